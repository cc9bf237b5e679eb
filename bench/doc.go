// Package bench measures keygate against the other ways of doing its job,
// side by side in one run on the same data. It is its own module so that
// the peers it measures never become dependencies of keygate.
package bench
