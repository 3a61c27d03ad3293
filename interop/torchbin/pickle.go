package torchbin

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// What a state dict's pickle may name. torch.save writes a dict (or an
// OrderedDict, with its _metadata as BUILD state) of tensors, each one
// torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
// requires_grad, backward_hooks[, metadata]) with the storage a persistent id
// ('storage', torch.<Type>Storage, key, location, numel). torch 2.x still
// names the typed storage classes there (TypedStorage._pickle_storage_type),
// so torch.storage.UntypedStorage and torch.storage._load_from_bytes (what a
// storage pickled without torch.save reduces to) never occur in a state dict
// and stay refused. Parameters saved as such add _rebuild_parameter
// (_with_state); a tensor with Python attributes or of a subclass goes
// through torch._tensor._rebuild_from_type_v2(func, type, args, state), which
// names its type (torch.Tensor or torch.nn.Parameter).

// rebuildKind names the rebuild functions the reader implements.
type rebuildKind int

const (
	rebuildTensorV2 rebuildKind = iota
	rebuildTensor
	rebuildParameter
	rebuildParameterWithState
	rebuildFromTypeV2
)

// rebuildFunc is a torch._utils rebuild function: Callable from REDUCE, and
// nothing else.
type rebuildFunc struct {
	kind rebuildKind
	name string
}

// storageClass is a torch.<Type>Storage named in a persistent id. It is not
// callable.
type storageClass struct {
	name  string
	dtype dtype
}

// classMarker is a tensor class named by _rebuild_from_type_v2. It is
// neither callable nor instantiable.
type classMarker struct{ name string }

var allowed = map[string]any{
	"collections.OrderedDict":                    &types.OrderedDictClass{},
	"torch._utils._rebuild_tensor_v2":            &rebuildFunc{rebuildTensorV2, "torch._utils._rebuild_tensor_v2"},
	"torch._utils._rebuild_tensor":               &rebuildFunc{rebuildTensor, "torch._utils._rebuild_tensor"},
	"torch._utils._rebuild_parameter":            &rebuildFunc{rebuildParameter, "torch._utils._rebuild_parameter"},
	"torch._utils._rebuild_parameter_with_state": &rebuildFunc{rebuildParameterWithState, "torch._utils._rebuild_parameter_with_state"},
	"torch._tensor._rebuild_from_type_v2":        &rebuildFunc{rebuildFromTypeV2, "torch._tensor._rebuild_from_type_v2"},
	"torch._tensor.Tensor":                       &classMarker{"torch.Tensor"},
	"torch.Tensor":                               &classMarker{"torch.Tensor"},
	"torch.nn.parameter.Parameter":               &classMarker{"torch.nn.Parameter"},
	"torch.FloatStorage":                         &storageClass{"torch.FloatStorage", f32},
	"torch.HalfStorage":                          &storageClass{"torch.HalfStorage", f16},
	"torch.BFloat16Storage":                      &storageClass{"torch.BFloat16Storage", bf16},
	"torch.DoubleStorage":                        &storageClass{"torch.DoubleStorage", f64},
	"torch.LongStorage":                          &storageClass{"torch.LongStorage", i64},
	"torch.IntStorage":                           &storageClass{"torch.IntStorage", i32},
}

// refusal is the error for a global off the allow list. It is reported as
// is, without the opcode's position, so that it reads as one plain line.
type refusal struct{ msg string }

func (r *refusal) Error() string { return r.msg }

// semanticError is an error raised by the reader's own callbacks (a storage
// or a tensor the pickle describes wrongly). unpickle reports it as is rather
// than as a malformed pickle.
type semanticError struct{ error }

func semantic(format string, args ...any) error {
	return semanticError{fmt.Errorf(format, args...)}
}

// checkGlobal refuses every global not on the allow list, with one line that
// names it.
func checkGlobal(module, name string) error {
	full := module + "." + name
	if _, ok := allowed[full]; ok {
		return nil
	}
	why := "a state dict needs only tensors"
	switch {
	case module == "torch" && strings.HasSuffix(name, "Storage"):
		why = "tensor storages of float32, float16, bfloat16, float64, int64 and int32 are supported"
	case module == "__main__" || strings.HasPrefix(module, "torch.nn.modules"):
		why = "a whole model was saved, not its state_dict()"
	}
	return &refusal{fmt.Sprintf("pickle asks for %s: refused (%s)", printable(full), why)}
}

// printable quotes s when it holds anything but plain identifier characters,
// so that an error stays one readable line.
func printable(s string) string {
	for _, r := range s {
		if !(r == '.' || r == '_' || r == '/' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return fmt.Sprintf("%q", s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}

func findClass(module, name string) (any, error) {
	if err := checkGlobal(module, name); err != nil {
		return nil, err
	}
	return allowed[module+"."+name], nil
}

// unpickle scans and then loads one pickle (data must end at its STOP).
// persistentLoad resolves storages; nil refuses persistent ids.
func unpickle(data []byte, persistentLoad func(any) (any, error)) (v any, err error) {
	if _, err := scanPickle(data); err != nil {
		return nil, err
	}
	// The scan rules out every panic we know of in gopickle, but the pickle
	// is untrusted: any other one (a DICT over an odd number of items, an
	// unhashable OrderedDict key) becomes an error too.
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("malformed pickle (%s)", oneLine(fmt.Sprint(r)))
		}
	}()
	u := pickle.NewUnpickler(bytes.NewReader(data))
	u.FindClass = findClass
	if persistentLoad != nil {
		u.PersistentLoad = func(pid any) (any, error) {
			v, err := persistentLoad(pid)
			if err != nil {
				return nil, semanticError{err}
			}
			return v, nil
		}
	} else {
		u.PersistentLoad = func(any) (any, error) {
			return nil, errors.New("persistent id outside the state dict's pickle")
		}
	}
	u.GetExtension = func(int) (any, error) { return nil, errors.New("extension registry: refused") }
	v, err = u.Load()
	var ref *refusal
	if errors.As(err, &ref) {
		return nil, ref
	}
	var sem semanticError
	if errors.As(err, &sem) {
		return nil, sem.error
	}
	if err != nil {
		return nil, fmt.Errorf("malformed pickle (%s)", oneLine(err.Error()))
	}
	return v, nil
}

// oneLine keeps a message from the pickle library on one line and short.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// tensorRef is a tensor as the pickle describes it: a view of a storage.
// Its data is read only when the tensor is kept.
type tensorRef struct {
	st     *storage
	offset int
	shape  []int
	stride []int
}

func (f *rebuildFunc) Call(args ...any) (any, error) {
	switch f.kind {
	case rebuildTensorV2, rebuildTensor:
		// _rebuild_tensor_v2(storage, storage_offset, size, stride,
		// requires_grad, backward_hooks[, metadata]);
		// _rebuild_tensor(storage, storage_offset, size, stride).
		if f.kind == rebuildTensorV2 && len(args) != 6 && len(args) != 7 || f.kind == rebuildTensor && len(args) != 4 {
			return nil, semantic("%s with %d arguments", f.name, len(args))
		}
		st, ok := args[0].(*storage)
		if !ok {
			return nil, semantic("%s: the storage is a %s, not a tensor storage", f.name, kindOf(args[0]))
		}
		off, ok := args[1].(int)
		if !ok || off < 0 {
			return nil, semantic("%s: storage offset %s", f.name, shortValue(args[1]))
		}
		shape, err := intTuple(args[2])
		if err != nil {
			return nil, semantic("%s: size %w", f.name, err)
		}
		stride, err := intTuple(args[3])
		if err != nil {
			return nil, semantic("%s: stride %w", f.name, err)
		}
		return &tensorRef{st: st, offset: off, shape: shape, stride: stride}, nil
	case rebuildParameter, rebuildParameterWithState:
		// (data, requires_grad, backward_hooks[, state])
		if f.kind == rebuildParameter && len(args) != 3 || f.kind == rebuildParameterWithState && len(args) != 4 {
			return nil, semantic("%s with %d arguments", f.name, len(args))
		}
		t, ok := args[0].(*tensorRef)
		if !ok {
			return nil, semantic("%s: the data is a %s, not a tensor", f.name, kindOf(args[0]))
		}
		return t, nil
	case rebuildFromTypeV2:
		// (func, new_type, args, state): func(*args), then the type and the
		// Python state, which a weight does not need.
		if len(args) != 4 {
			return nil, semantic("%s with %d arguments", f.name, len(args))
		}
		fn, ok := args[0].(*rebuildFunc)
		if !ok || fn.kind == rebuildFromTypeV2 {
			return nil, semantic("%s: the function is a %s, not a tensor rebuild function", f.name, kindOf(args[0]))
		}
		if _, ok := args[1].(*classMarker); !ok {
			return nil, semantic("%s: the type is a %s, not torch.Tensor or torch.nn.Parameter", f.name, kindOf(args[1]))
		}
		inner, ok := args[2].(*types.Tuple)
		if !ok {
			return nil, semantic("%s: the arguments are a %s, not a tuple", f.name, kindOf(args[2]))
		}
		return fn.Call(*inner...)
	}
	return nil, semantic("%s: not implemented", f.name)
}

// maxDims bounds a tensor's rank.
const maxDims = 64

func intTuple(v any) ([]int, error) {
	t, ok := v.(*types.Tuple)
	if !ok {
		return nil, fmt.Errorf("is a %s, not a tuple of ints", kindOf(v))
	}
	if t.Len() > maxDims {
		return nil, fmt.Errorf("has %d entries (at most %d dimensions)", t.Len(), maxDims)
	}
	out := make([]int, t.Len())
	for i := range out {
		n, ok := t.Get(i).(int)
		if !ok {
			return nil, fmt.Errorf("entry %d is %s, not an int", i, shortValue(t.Get(i)))
		}
		out[i] = n
	}
	return out, nil
}

// kindOf names a pickled value's Python type, for messages.
func kindOf(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int, *big.Int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case *types.ByteArray:
		return "bytearray"
	case *types.Tuple:
		return "tuple"
	case *types.List:
		return "list"
	case *types.Dict:
		return "dict"
	case *types.OrderedDict:
		return "OrderedDict"
	case *types.Set, *types.FrozenSet:
		return "set"
	case *tensorRef:
		return "tensor"
	case *storage:
		return "storage"
	case *storageClass:
		return v.name + " class"
	case *rebuildFunc:
		return v.name
	case *classMarker:
		return v.name + " class"
	}
	return fmt.Sprintf("%T", v)
}

func shortValue(v any) string {
	switch v := v.(type) {
	case int, bool, float64:
		return fmt.Sprint(v)
	case string:
		if len(v) > 40 {
			v = v[:40] + "…"
		}
		return fmt.Sprintf("%q", v)
	}
	return "a " + kindOf(v)
}
