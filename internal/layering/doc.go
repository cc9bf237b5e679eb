// Package layering holds no code: its test polices the whole module's
// import graph, so that the layers keep pointing one way.
package layering
