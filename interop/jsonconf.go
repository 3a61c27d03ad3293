package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
)

// jsonConf reads the keys of one diffusers config file (config.json,
// scheduler_config.json, model_index.json) with diffusers' rules: an absent
// key takes the class's default, a JSON null is Python's None (which is not
// always the default), and every error is one line naming the file and the
// key.
type jsonConf struct {
	file string
	m    map[string]json.RawMessage
	seen map[string]bool
}

func parseConf(file string, data []byte) (*jsonConf, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object: %v", file, oneLine(err.Error()))
	}
	return &jsonConf{file: file, m: m, seen: map[string]bool{}}, nil
}

// get returns the raw value of key; present is false when the key is
// absent, null is set for a JSON null.
func (c *jsonConf) get(key string) (raw json.RawMessage, present, null bool) {
	c.seen[key] = true
	raw, present = c.m[key]
	return raw, present, present && bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// errf is an error about key of the file, its value shown.
func (c *jsonConf) errf(key, format string, a ...any) error {
	v := "absent"
	if raw, ok := c.m[key]; ok {
		v = compact(raw)
	}
	return fmt.Errorf("%s: %q = %s: %s", c.file, key, v, fmt.Sprintf(format, a...))
}

// compact is a JSON value on one short line.
func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return strings.TrimSpace(string(raw))
	}
	s := b.String()
	if len(s) > 80 {
		s = s[:77] + "…"
	}
	return s
}

// str reads a string; def when absent, "" (None) when null.
func (c *jsonConf) str(key, def string) (string, error) {
	raw, present, null := c.get(key)
	switch {
	case !present:
		return def, nil
	case null:
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", c.errf(key, "not a string")
	}
	return s, nil
}

// boolean reads a bool; def when absent, false (None) when null.
func (c *jsonConf) boolean(key string, def bool) (bool, error) {
	raw, present, null := c.get(key)
	switch {
	case !present:
		return def, nil
	case null:
		return false, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return false, c.errf(key, "not true or false")
	}
	return b, nil
}

// number reads a number; def when absent; null is reported through isNull
// (with def as the value).
func (c *jsonConf) number(key string, def float64) (v float64, isNull bool, err error) {
	raw, present, null := c.get(key)
	switch {
	case !present:
		return def, false, nil
	case null:
		return def, true, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false, c.errf(key, "not a number")
	}
	return v, false, nil
}

// integer is number for a whole number (2.0 is 2, as Python takes it).
func (c *jsonConf) integer(key string, def int) (v int, isNull bool, err error) {
	f, isNull, err := c.number(key, float64(def))
	if err != nil {
		return 0, false, err
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<30 {
		return 0, false, c.errf(key, "not a whole number")
	}
	return int(f), isNull, nil
}

// ints reads a list of whole numbers; def when absent; null is an error
// unless nullOK.
func (c *jsonConf) ints(key string, def []int) ([]int, error) {
	raw, present, null := c.get(key)
	switch {
	case !present:
		return def, nil
	case null:
		return nil, c.errf(key, "a list of whole numbers is needed")
	}
	var fs []float64
	if err := json.Unmarshal(raw, &fs); err != nil {
		return nil, c.errf(key, "not a list of numbers")
	}
	out := make([]int, len(fs))
	for i, f := range fs {
		if f != math.Trunc(f) || math.Abs(f) > 1<<30 {
			return nil, c.errf(key, "not a list of whole numbers")
		}
		out[i] = int(f)
	}
	return out, nil
}

// strs reads a list of strings; def when absent.
func (c *jsonConf) strs(key string, def []string) ([]string, error) {
	raw, present, null := c.get(key)
	switch {
	case !present:
		return def, nil
	case null:
		return nil, c.errf(key, "a list of names is needed")
	}
	var s []string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, c.errf(key, "not a list of strings")
	}
	return s, nil
}

// unknown reports the first key (in sorted order) that no reader asked
// for and whose value is not null, ignoring keys that start with "_"
// (diffusers' own bookkeeping: _class_name, _diffusers_version,
// _name_or_path, _use_default_values). A key this package does not know
// may change what the model computes, so it is refused rather than
// ignored.
func (c *jsonConf) unknown(ignore ...string) error {
	var keys []string
	for k := range c.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if c.seen[k] || strings.HasPrefix(k, "_") || contains(ignore, k) {
			continue
		}
		if _, _, null := c.get(k); null {
			continue
		}
		return c.errf(k, "a key this importer does not know (a newer diffusers?); it may change the model, so it is not ignored")
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// oneLine folds a message onto one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
