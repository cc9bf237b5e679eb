// Allowlist entry validation: a port of engine/entry.go (ParseEntry and
// BuildAllowlist) so that the UI can explain problems as the user types.
// The server stays the authority; the browser test compares this module's
// verdicts with the engine's on a table of inputs, so keep the two in step.

export const MAX_ENTRIES = 20;
export const MIN_PREFIX_V4 = 9;
export const MIN_PREFIX_V6 = 33;
export const MAX_LABEL_LEN = 64;
const MAX_ENTRY_LEN = 64;

// Rule names, as the server reports them in error details.
export const Rule = Object.freeze({
  Malformed: "malformed",
  TooBroad: "prefix_too_broad",
  HostBits: "host_bits_set",
  Duplicate: "duplicate",
  Private: "non_public_range",
  TooMany: "too_many_entries",
  Label: "invalid_label",
});

// An address is {bytes: Uint8Array(4|16)}; a prefix is {bytes, bits}.

// parseIPv4 parses strict dotted decimal (no leading zeros), or returns null.
function parseIPv4(s) {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (!/^[0-9]{1,3}$/.test(p)) return null;
    if (p.length > 1 && p[0] === "0") return null;
    const n = Number(p);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

// parseIPv6 follows net/netip's parser: groups of 1-4 hex digits, at most
// one "::" that stands for at least one zero group, and an optional
// trailing dotted IPv4 part. Zones are rejected before this is called.
function parseIPv6(s) {
  const ip = new Uint8Array(16);
  let ellipsis = -1;
  if (s.startsWith("::")) {
    ellipsis = 0;
    s = s.slice(2);
    if (s === "") return ip;
  }
  let i = 0;
  while (i < 16) {
    const m = /^[0-9a-fA-F]+/.exec(s);
    const off = m ? m[0].length : 0;
    if (off === 0 || off > 4) return null;
    if (off < s.length && s[off] === ".") {
      if (ellipsis < 0 && i !== 12) return null;
      if (i + 4 > 16) return null;
      const v4 = parseIPv4(s);
      if (!v4) return null;
      ip.set(v4, i);
      s = "";
      i += 4;
      break;
    }
    const acc = parseInt(m[0], 16);
    ip[i] = acc >> 8;
    ip[i + 1] = acc & 0xff;
    i += 2;
    s = s.slice(off);
    if (s === "") break;
    if (s[0] !== ":" || s.length === 1) return null;
    s = s.slice(1);
    if (s[0] === ":") {
      if (ellipsis >= 0) return null;
      ellipsis = i;
      s = s.slice(1);
      if (s === "") break;
    }
  }
  if (s !== "") return null;
  if (i < 16) {
    if (ellipsis < 0) return null;
    const n = 16 - i;
    for (let j = i - 1; j >= ellipsis; j--) ip[j + n] = ip[j];
    ip.fill(0, ellipsis, ellipsis + n);
  } else if (ellipsis >= 0) {
    return null;
  }
  return ip;
}

// parseAddr parses an IPv4 or IPv6 address without zone, or returns null.
export function parseAddr(s) {
  for (const c of s) {
    if (c === ".") return parseIPv4(s);
    if (c === ":") return parseIPv6(s);
    if (c === "%") return null;
  }
  return null;
}

function is4In6(b) {
  if (b.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

// unmap returns the IPv4 address carried by an IPv4-mapped IPv6 address,
// and any other address unchanged.
export function unmap(b) {
  return is4In6(b) ? b.slice(12) : b;
}

function mask(bytes, bits) {
  const out = bytes.slice();
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    out[i] &= keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff;
  }
  return out;
}

function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// formatAddr renders an address as net/netip does (RFC 5952 for IPv6).
export function formatAddr(b) {
  if (b.length === 4) return Array.from(b).join(".");
  if (is4In6(b)) return "::ffff:" + Array.from(b.slice(12)).join(".");
  const groups = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i] << 8) | b[i + 1]);
  // The longest run of two or more zero groups becomes "::" (the first one
  // on a tie).
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (g) => g.toString(16);
  if (best < 0) return groups.map(hex).join(":");
  return groups.slice(0, best).map(hex).join(":") + "::" +
    groups.slice(best + bestLen).map(hex).join(":");
}

export function formatPrefix(p) {
  return formatAddr(p.bytes) + "/" + p.bits;
}

// contains reports whether prefix p contains address a (after unmapping).
export function contains(p, a) {
  a = unmap(a);
  if (a.length !== p.bytes.length) return false;
  return sameBytes(mask(a, p.bits), p.bytes);
}

function overlaps(p, q) {
  if (p.bytes.length !== q.bytes.length) return false;
  const bits = Math.min(p.bits, q.bits);
  return sameBytes(mask(p.bytes, bits), mask(q.bytes, bits));
}

// SPECIALS mirrors engine/special.go: the non-public ranges, each with the
// globally reachable prefixes inside it that stay acceptable.
const SPECIALS = [
  ["0.0.0.0/8", 'the unspecified/"this network" range 0.0.0.0/8'],
  ["10.0.0.0/8", "the private range 10.0.0.0/8"],
  ["100.64.0.0/10", "the carrier-grade NAT range 100.64.0.0/10"],
  ["127.0.0.0/8", "the loopback range 127.0.0.0/8"],
  ["169.254.0.0/16", "the link-local range 169.254.0.0/16"],
  ["172.16.0.0/12", "the private range 172.16.0.0/12"],
  ["192.0.0.0/24", "the IETF protocol assignments range 192.0.0.0/24"],
  ["192.168.0.0/16", "the private range 192.168.0.0/16"],
  ["198.18.0.0/15", "the benchmarking range 198.18.0.0/15"],
  ["224.0.0.0/4", "the multicast range 224.0.0.0/4"],
  ["240.0.0.0/4", "the reserved range 240.0.0.0/4"],
  ["::/128", "the unspecified address ::"],
  ["::1/128", "the loopback address ::1"],
  ["::/96", "the deprecated IPv4-compatible range ::/96"],
  ["64:ff9b::/96", "the NAT64 range 64:ff9b::/96"],
  ["64:ff9b:1::/48", "the local-use NAT64 range 64:ff9b:1::/48"],
  ["100::/64", "the discard-only range 100::/64"],
  ["100:0:0:1::/64", "the dummy IPv6 prefix 100:0:0:1::/64"],
  ["2001::/32", "the Teredo range 2001::/32"],
  ["2001:2::/48", "the benchmarking range 2001:2::/48"],
  ["2001:10::/28", "the deprecated ORCHID range 2001:10::/28"],
  ["2001::/23", "the IETF protocol assignments range 2001::/23",
    ["2001:1::1/128", "2001:1::2/128", "2001:1::3/128", "2001:3::/32", "2001:4:112::/48", "2001:20::/28", "2001:30::/28"]],
  ["2002::/16", "the 6to4 range 2002::/16"],
  ["5f00::/16", "the SRv6 SID range 5f00::/16"],
  ["fc00::/7", "the unique local (private) range fc00::/7"],
  ["fe80::/10", "the link-local range fe80::/10"],
  ["fec0::/10", "the deprecated site-local range fec0::/10"],
  ["ff00::/8", "the multicast range ff00::/8"],
].map(([cidr, name, except = []]) => ({ pfx: parseCIDR(cidr), name, except: except.map(parseCIDR) }));

// EMBEDDINGS mirrors engine/special.go: IPv6 ranges whose addresses carry
// an IPv4 address, at a fixed byte (or -1 when it depends on the operator).
const EMBEDDINGS = [
  ["::/96", "the deprecated IPv4-compatible range ::/96", 12],
  ["64:ff9b::/96", "the NAT64 range 64:ff9b::/96", 12],
  ["64:ff9b:1::/48", "the local-use NAT64 range 64:ff9b:1::/48", -1],
  ["2002::/16", "the 6to4 range 2002::/16", 2],
].map(([cidr, name, at]) => ({ pfx: parseCIDR(cidr), name, at }));

function parseCIDR(cidr) {
  const [a, b] = cidr.split("/");
  return { bytes: parseAddr(a), bits: Number(b) };
}

// within reports whether prefix p lies entirely inside one of list.
function within(p, list) {
  return list.some((e) => e.bytes.length === p.bytes.length && e.bits <= p.bits && sameBytes(mask(p.bytes, e.bits), e.bytes));
}

function nonPublic(p) {
  for (const s of SPECIALS) if (overlaps(s.pfx, p) && !within(p, s.except)) return s.name;
  return "";
}

function isZeroOrOne(b) {
  for (let i = 0; i < 15; i++) if (b[i] !== 0) return false;
  return b[15] <= 1;
}

// embeddedV4 mirrors Policy.embeddedV4 under the default policy.
function embeddedV4(p) {
  if (p.bytes.length !== 16 || (p.bits === 128 && isZeroOrOne(p.bytes))) return null;
  const cidr = formatPrefix(p);
  for (const e of EMBEDDINGS) {
    if (!within(p, [e.pfx])) continue;
    if (e.at >= 0) {
      const v4bits = Math.min(Math.max(p.bits - 8 * e.at, 0), 32);
      const v4 = { bytes: mask(p.bytes.slice(e.at, e.at + 4), v4bits), bits: v4bits };
      if (v4bits > 0 && !checkPrefix(v4)) {
        const suggestion = v4bits === 32 ? formatAddr(v4.bytes) : formatPrefix(v4);
        return {
          rule: Rule.Private, suggestion,
          message: `${cidr} is in ${e.name}, which carries the IPv4 address ${suggestion}: the API sees a client using it as that IPv4 address, so enter ${suggestion} itself`,
        };
      }
    }
    return {
      rule: Rule.Private,
      message: `${cidr} is in ${e.name}, whose addresses carry an IPv4 address: the API sees such a client by its IPv4 address, so enter the IPv4 address (or range) itself`,
    };
  }
  return null;
}

// checkPrefix mirrors Policy.checkPrefix under the default policy: the
// breadth floors, then the non-public ranges. It returns an error or null.
function checkPrefix(p) {
  const v4 = p.bytes.length === 4;
  const min = v4 ? MIN_PREFIX_V4 : MIN_PREFIX_V6;
  if (p.bits < min) {
    return { rule: Rule.TooBroad, message: `/${p.bits} is broader than allowed: IPv${v4 ? 4 : 6} ranges must be /${min} or longer (narrower); split the range or use your egress IPs` };
  }
  const emb = embeddedV4(p);
  if (emb) return emb;
  const name = nonPublic(p);
  if (name) {
    return { rule: Rule.Private, message: `${formatPrefix(p)} is in ${name}: the API sees your public egress IP, so this entry can never match; use the public IP of your NAT gateway or load balancer` };
  }
  return null;
}

function hasLeadingZeroOctet(s) {
  return s.split(".").some((part) => part.length > 1 && part[0] === "0");
}

function malformedAddrMessage(s) {
  const lower = s.toLowerCase();
  const colons = (s.match(/:/g) || []).length;
  const dots = (s.match(/\./g) || []).length;
  if (colons === 1 && s.includes(".")) {
    return "the entry has a port (:port): enter the address alone";
  }
  if (lower.startsWith("0x") || lower.includes(".0x")) {
    return "hexadecimal address forms are not accepted: write the address in dotted decimal, e.g. 203.0.113.5";
  }
  if (s === "") {
    return "the entry has no address before the /: enter one, e.g. 203.0.113.0/24";
  }
  if (/^[0-9]+$/.test(s)) {
    return "integer address forms are not accepted: write the address in dotted decimal (203.0.113.5) or IPv6 notation (2001:db8::1)";
  }
  if (!/[.:]/.test(s)) {
    return `${JSON.stringify(s)} is not an IP address or CIDR range: enter an IPv4 address (203.0.113.5), an IPv6 address (2001:db8::1), or a CIDR range (203.0.113.0/24)`;
  }
  if (!s.includes(":") && hasLeadingZeroOctet(s)) {
    return "an octet has a leading zero (some systems read it as octal): write it without, e.g. 10.1.1.1 instead of 010.1.1.1";
  }
  if (!s.includes(":") && dots !== 3) {
    return "an IPv4 address has four dot-separated numbers, e.g. 203.0.113.5";
  }
  return "this is not a valid IP address: enter an IPv4 address (203.0.113.5), an IPv6 address (2001:db8::1), or a CIDR range (203.0.113.0/24)";
}

function parseBits(s) {
  if (s === "" || s.length > 3 || (s.length > 1 && s[0] === "0")) return -1;
  if (!/^[0-9]+$/.test(s)) return -1;
  return Number(s);
}

// parseEntry validates one entry. It returns {prefix, cidr} on success, or
// {error: {rule, message, suggestion?}}. Private ranges are reported with
// rule "non_public_range" and, because the server may run with
// --allow-private-ranges, also carry the parsed prefix: the caller decides
// whether it is a warning or an error.
export function parseEntry(s) {
  const bad = (rule, message, extra = {}) => ({ error: { rule, message, ...extra } });
  if (s === "") {
    return bad(Rule.Malformed, "the entry is empty: enter an IP address (203.0.113.5) or a CIDR range (203.0.113.0/24)");
  }
  if (new TextEncoder().encode(s).length > MAX_ENTRY_LEN) {
    return bad(Rule.Malformed, `the entry is ${new TextEncoder().encode(s).length} bytes long, longer than any IP address or CIDR range can be`);
  }
  const t = s.trim();
  if (t !== s) {
    return bad(Rule.Malformed, `the entry has leading or trailing spaces: enter ${JSON.stringify(t)}`);
  }
  for (const c of s) {
    const code = c.codePointAt(0);
    if (c === " " || c === "\t") return bad(Rule.Malformed, "the entry contains spaces: an IP address or CIDR range has none");
    if (c === "%") return bad(Rule.Malformed, "the entry has a zone (the part after %): zones are local to one host and never appear in a request's source address; remove it");
    if (c === "[" || c === "]") return bad(Rule.Malformed, "the entry has brackets: enter the bare IPv6 address, e.g. 2001:db8::1");
    if (code < 0x21 || code > 0x7e) return bad(Rule.Malformed, "the entry contains characters that cannot appear in an IP address");
  }
  const slash = s.indexOf("/");
  const addrText = slash < 0 ? s : s.slice(0, slash);
  const bitsText = slash < 0 ? "" : s.slice(slash + 1);
  let addr = parseAddr(addrText);
  if (!addr) return bad(Rule.Malformed, malformedAddrMessage(addrText));
  const bitLen = addr.length * 8;
  let bits = bitLen;
  if (slash >= 0) {
    const n = parseBits(bitsText);
    if (n < 0) {
      return bad(Rule.Malformed, `the prefix length ${JSON.stringify("/" + bitsText)} is not a plain decimal number: write it like /24 or /48`);
    }
    if (n > bitLen) {
      return bad(Rule.Malformed, `the prefix length /${n} is longer than the ${bitLen} bits of an IPv${addr.length === 4 ? 4 : 6} address`);
    }
    bits = n;
  }
  if (is4In6(addr)) {
    if (bits < 96) {
      return bad(Rule.TooBroad, `the IPv4-mapped range /${bits} covers far more than IPv4 addresses: IPv4 ranges must be /${MIN_PREFIX_V4} or longer`);
    }
    addr = addr.slice(12);
    bits -= 96;
  }
  const masked = mask(addr, bits);
  if (!sameBytes(masked, addr)) {
    const suggestion = formatPrefix({ bytes: masked, bits });
    const refused = checkPrefix({ bytes: masked, bits });
    if (refused) {
      // The range the address belongs to is refused too: say why, rather
      // than suggest it.
      return bad(Rule.HostBits, `the address has bits set beyond the /${bits} prefix, and the whole range ${suggestion} would be refused too: ${refused.message}`);
    }
    const single = formatPrefix({ bytes: addr, bits: addr.length * 8 });
    return bad(Rule.HostBits,
      `the address has bits set beyond the /${bits} prefix: did you mean ${suggestion} (the whole range) or ${single} (the single address)?`,
      { suggestion });
  }
  const prefix = { bytes: addr, bits };
  const cidr = formatPrefix(prefix);
  const problem = checkPrefix(prefix);
  if (problem && problem.rule === Rule.Private) return { prefix, cidr, error: problem };
  if (problem) return { error: problem };
  return { prefix, cidr };
}

// checkLabel returns why a label is unacceptable, or "".
export function checkLabel(s) {
  const n = [...s].length;
  if (n > MAX_LABEL_LEN) return `the label is ${n} characters long; the limit is ${MAX_LABEL_LEN}`;
  // Go's unicode.IsPrint: no control/format/unassigned characters and no
  // separators other than the ASCII space.
  const m = /[\p{C}\p{Zl}\p{Zp}]|(?! )\p{Zs}/u.exec(s);
  if (m) {
    const cp = m[0].codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
    return `the label contains the non-printable character U+${cp}: use plain text`;
  }
  return "";
}

// validateList checks a whole list as the server's BuildAllowlist does and
// returns one result per row: {cidr?, prefix?, error?, warning?}. A private
// range is a warning (the server may be configured to accept it); every
// other problem is an error that blocks saving.
export function validateList(rows) {
  const seen = new Map();
  const results = rows.map((row, i) => {
    const r = parseEntry(row.cidr);
    const out = {};
    if (r.prefix) { out.prefix = r.prefix; out.cidr = r.cidr; }
    if (r.error && r.error.rule === Rule.Private) {
      out.warning = r.error;
    } else if (r.error) {
      out.error = r.error;
      return out;
    }
    const labelMsg = checkLabel(row.label || "");
    if (labelMsg) {
      out.error = { rule: Rule.Label, message: labelMsg };
      return out;
    }
    if (seen.has(out.cidr)) {
      const j = seen.get(out.cidr);
      out.error = {
        rule: Rule.Duplicate,
        message: `${out.cidr} is already in the list as entry ${j + 1} (${JSON.stringify(rows[j].cidr)}): remove one of them`,
      };
      return out;
    }
    seen.set(out.cidr, i);
    return out;
  });
  if (rows.length > MAX_ENTRIES) {
    for (let i = MAX_ENTRIES; i < rows.length; i++) {
      if (!results[i].error) {
        results[i].error = {
          rule: Rule.TooMany,
          message: `a key can have at most ${MAX_ENTRIES} allowlist entries, this list has ${rows.length}: remove ${rows.length - MAX_ENTRIES}, or cover neighbouring addresses with one CIDR range`,
        };
      }
    }
  }
  return results;
}
