# The keygate decision as a team would write it for OPA's server: keys by
# the SHA-256 of their secret in data.keys (bench.PolicyData), input
# {"key", "ip"}; the answer carries the status keygate would give.
package keygate

k := data.keys[crypto.sha256(input.key)]

default decision := {"status": 401, "code": "INVALID_KEY"}

decision := {"status": 200, "key_id": k.id, "key_name": k.name} if allowed

decision := {"status": 403, "code": "IP_NOT_ALLOWED"} if {
	k.id
	not allowed
}

allowed if count(k.allowlist) == 0

allowed if {
	some cidr in k.allowlist
	net.cidr_contains(cidr, input.ip)
}
