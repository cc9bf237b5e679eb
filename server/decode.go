package server

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/valyala/fasthttp"
)

// decodeOptions make the management API read a body exactly one way: a
// name that appears twice in one object is refused (encoding/json kept
// the last, so a reviewer reading the first saw a different key than the
// one stored), names match their documented spelling exactly ("CIDR" is
// not "cidr"), unknown names are refused, and so is invalid UTF-8. These
// are the JSON v2 defaults plus RejectUnknownMembers; they are spelled out
// so that a change of defaults cannot loosen them.
var decodeOptions = jsonv2.JoinOptions(
	jsontext.AllowDuplicateNames(false),
	jsontext.AllowInvalidUTF8(false),
	jsonv2.MatchCaseInsensitiveNames(false),
	jsonv2.RejectUnknownMembers(true),
)

// decodeJSON decodes the request body, one JSON object, into v. A
// duplicate or unknown field (at any depth), a value of the wrong type
// and trailing data are a 400 BAD_REQUEST naming the field; v is then
// partly filled and must not be used. A JSON null leaves a field as its
// zero value (a nil pointer: "not given").
func decodeJSON(ctx *fasthttp.RequestCtx, v any) error {
	body := ctx.PostBody()
	if len(strings.TrimSpace(string(body))) == 0 {
		return errorf(ErrBadRequest, "the request body is empty: send a JSON object")
	}
	if err := jsonv2.Unmarshal(body, v, decodeOptions); err != nil {
		return errorf(ErrBadRequest, "%s; nothing was applied", describeJSONError(err))
	}
	return nil
}

// describeJSONError says which field of the body is wrong and how.
func describeJSONError(err error) string {
	var syn *jsontext.SyntacticError
	var sem *jsonv2.SemanticError
	switch {
	case errors.As(err, &syn) && errors.Is(syn.Err, jsontext.ErrDuplicateName):
		return fmt.Sprintf("field %s appears more than once: send each field once", fieldName(syn.JSONPointer))
	case errors.As(err, &syn):
		msg := strings.TrimPrefix(syn.Err.Error(), "jsontext: ")
		if strings.Contains(msg, "after top-level value") {
			return "malformed JSON body: unexpected data after the JSON object"
		}
		if strings.Contains(msg, "unexpected EOF") {
			msg = "the body ends before the JSON object does"
		}
		if syn.JSONPointer != "" {
			return fmt.Sprintf("malformed JSON body at %s: %s", fieldName(syn.JSONPointer), msg)
		}
		return "malformed JSON body: " + msg
	case errors.As(err, &sem) && errors.Is(sem.Err, jsonv2.ErrUnknownName):
		msg := fmt.Sprintf("unknown field %s: field names are exact and case-sensitive", fieldName(sem.JSONPointer))
		if names := fieldNames(sem.GoType); names != "" {
			msg += "; this object takes " + names
		}
		return msg
	case errors.As(err, &sem):
		where := "the body"
		if sem.JSONPointer != "" {
			where = "field " + fieldName(sem.JSONPointer)
		}
		want := "a JSON object"
		if sem.GoType != nil {
			want = jsonKindOf(sem.GoType)
		}
		if sem.JSONKind == '"' && want == timeWant {
			return fmt.Sprintf("%s must be %s such as 2030-01-02T15:04:05Z (null for none)", where, want)
		}
		got := "a JSON " + kindName(sem.JSONKind)
		return fmt.Sprintf("%s must be %s, not %s", where, want, got)
	}
	return "malformed JSON body: " + strings.TrimPrefix(strings.TrimPrefix(err.Error(), "json: "), "jsontext: ")
}

// fieldName writes a JSON pointer the way the API documents fields:
// "/allowlist/0/cidr" is allowlist[0].cidr, quoted.
func fieldName(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if _, err := strconv.Atoi(tok); err == nil && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	if b.Len() == 0 {
		return "(the body)"
	}
	return strconv.Quote(b.String())
}

// fieldNames lists the JSON names of struct type t ("cidr, label").
func fieldNames(t reflect.Type) string {
	for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice) {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return ""
	}
	var names []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return strings.Join(names, ", ")
}

const timeWant = "an RFC 3339 time"

func jsonKindOf(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a JSON string"
	case reflect.Slice, reflect.Array:
		return "a JSON array"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Float64:
		return "a JSON number"
	case reflect.Struct:
		if t.String() == "time.Time" {
			return timeWant
		}
	}
	return "a JSON object"
}

func kindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "string"
	case '0':
		return "number"
	case 't', 'f':
		return "boolean"
	case '[':
		return "array"
	case '{':
		return "object"
	case 'n':
		return "null"
	}
	return "value"
}
