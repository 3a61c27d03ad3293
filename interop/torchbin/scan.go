package torchbin

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// The pickle is scanned before gopickle sees it. gopickle trusts its input:
// a length field allocates before reading (BINBYTES8 of 2^62 bytes is a
// fatal out-of-memory), an opcode byte of 0xff indexes past its dispatch
// table, LONG1 of zero bytes indexes an empty slice, and three globals
// (collections.OrderedDict, __builtin__.object, copy_reg._reconstructor) are
// resolved without consulting FindClass. The scan walks the opcode stream as
// pickletools.genops does and refuses, before anything is built:
//   - an opcode gopickle does not know, or one a state dict never needs
//     (extension registry, out-of-band buffers);
//   - an argument that runs past the end of the pickle (so every allocation
//     gopickle makes is bounded by the pickle's own length);
//   - any global (GLOBAL, INST, STACK_GLOBAL) not on the allow list, including
//     the three gopickle would resolve itself; STACK_GLOBAL takes its names
//     from the stack, so the scan follows the strings pushed (directly or
//     through the memo) and refuses names it cannot see;
//   - more than maxOps opcodes (gopickle's allocations per opcode are a few
//     hundred bytes at most, so this bounds its memory).
// It returns the offset just past STOP, which is how the legacy format finds
// where one pickle ends and the next begins.

// maxOps bounds the opcodes of one pickle. A state dict takes about 20 per
// tensor (a 450-tensor U-Net: ~30 000), so this allows some 50 000 tensors
// while keeping gopickle's working memory (at most a few hundred bytes per
// opcode) near 300 MiB even for a pickle built to waste it.
const maxOps = 1 << 20

// errTruncated reports a pickle that ends before its STOP opcode. The legacy
// reader grows its buffer when it sees it.
var errTruncated = errors.New("pickle truncated (no STOP opcode before the end of the data)")

// shadow is what the scan knows about a stack item: a string's value, or
// nothing.
type shadow struct {
	known bool
	s     string
}

type scanner struct {
	data []byte
	pos  int
	// top holds the most recently pushed items while every opcode since the
	// last reset only pushed (strings, memo reads) or wrote the memo; then
	// its last entries are the top of the real stack.
	top  []shadow
	memo map[int]shadow
}

// scanPickle checks data[0:] up to the first STOP and returns the offset just
// past it.
func scanPickle(data []byte) (end int, err error) {
	s := &scanner{data: data, memo: make(map[int]shadow)}
	for ops := 0; ; ops++ {
		if ops >= maxOps {
			return 0, fmt.Errorf("pickle has more than %d opcodes (a state dict needs far fewer)", maxOps)
		}
		if s.pos >= len(data) {
			return 0, errTruncated
		}
		at := s.pos
		op := data[s.pos]
		s.pos++
		stop, err := s.step(op)
		if err != nil {
			var ref *refusal
			if err == errTruncated || errors.As(err, &ref) {
				return 0, err
			}
			return 0, fmt.Errorf("pickle opcode 0x%02x at byte %d: %w", op, at, err)
		}
		if stop {
			return s.pos, nil
		}
	}
}

func (s *scanner) need(n uint64) ([]byte, error) {
	if n > uint64(len(s.data)-s.pos) {
		return nil, errTruncated
	}
	b := s.data[s.pos : s.pos+int(n)]
	s.pos += int(n)
	return b, nil
}

func (s *scanner) u8() (uint64, error) {
	b, err := s.need(1)
	if err != nil {
		return 0, err
	}
	return uint64(b[0]), nil
}

func (s *scanner) u16() (uint64, error) {
	b, err := s.need(2)
	if err != nil {
		return 0, err
	}
	return uint64(binary.LittleEndian.Uint16(b)), nil
}

func (s *scanner) u32() (uint64, error) {
	b, err := s.need(4)
	if err != nil {
		return 0, err
	}
	return uint64(binary.LittleEndian.Uint32(b)), nil
}

func (s *scanner) u64() (uint64, error) {
	b, err := s.need(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// line returns the bytes up to (not including) the next '\n' and moves past it.
func (s *scanner) line() (string, error) {
	i := bytes.IndexByte(s.data[s.pos:], '\n')
	if i < 0 {
		return "", errTruncated
	}
	l := string(s.data[s.pos : s.pos+i])
	s.pos += i + 1
	return l, nil
}

// counted reads a length of the given width (1, 4 or 8 bytes) and then that
// many bytes.
func (s *scanner) counted(width int) ([]byte, error) {
	var n uint64
	var err error
	switch width {
	case 1:
		n, err = s.u8()
	case 4:
		n, err = s.u32()
	default:
		n, err = s.u64()
	}
	if err != nil {
		return nil, err
	}
	return s.need(n)
}

func (s *scanner) push(v shadow) {
	s.top = append(s.top, v)
	if len(s.top) > 2 {
		s.top = s.top[len(s.top)-2:]
	}
}

func (s *scanner) pushString(b []byte) { s.push(shadow{known: true, s: string(b)}) }

// memoPut records the top of the stack under index i.
func (s *scanner) memoPut(i int) {
	var v shadow
	if len(s.top) > 0 {
		v = s.top[len(s.top)-1]
	}
	s.memo[i] = v
}

func (s *scanner) memoGet(i int) { s.push(s.memo[i]) }

// step handles one opcode; stop reports STOP.
func (s *scanner) step(op byte) (stop bool, err error) {
	keep := false // whether s.top stays valid after this opcode
	switch op {
	// Strings: the only items STACK_GLOBAL may name.
	case 'S', 'V': // STRING, UNICODE (text line)
		l, err := s.line()
		if err != nil {
			return false, err
		}
		if op == 'S' {
			if len(l) < 2 || l[0] != l[len(l)-1] || (l[0] != '\'' && l[0] != '"') {
				return false, errors.New("STRING argument is not quoted")
			}
			l = l[1 : len(l)-1]
		}
		s.pushString([]byte(l))
		return false, nil
	case 'T': // BINSTRING: signed 4-byte length
		n, err := s.u32()
		if err != nil {
			return false, err
		}
		if int32(n) < 0 {
			return false, errors.New("BINSTRING with a negative length")
		}
		b, err := s.need(n)
		if err != nil {
			return false, err
		}
		s.pushString(b)
		return false, nil
	case 'U', 0x8c: // SHORT_BINSTRING, SHORT_BINUNICODE
		b, err := s.counted(1)
		if err != nil {
			return false, err
		}
		s.pushString(b)
		return false, nil
	case 'X': // BINUNICODE
		b, err := s.counted(4)
		if err != nil {
			return false, err
		}
		s.pushString(b)
		return false, nil
	case 0x8d: // BINUNICODE8
		b, err := s.counted(8)
		if err != nil {
			return false, err
		}
		s.pushString(b)
		return false, nil

	// The memo.
	case 'p': // PUT
		l, err := s.line()
		if err != nil {
			return false, err
		}
		i, err := strconv.Atoi(l)
		if err != nil || i < 0 {
			return false, fmt.Errorf("PUT index %q", l)
		}
		s.memoPut(i)
		return false, nil
	case 'q': // BINPUT
		i, err := s.u8()
		if err != nil {
			return false, err
		}
		s.memoPut(int(i))
		return false, nil
	case 'r': // LONG_BINPUT
		i, err := s.u32()
		if err != nil {
			return false, err
		}
		s.memoPut(int(i))
		return false, nil
	case 0x94: // MEMOIZE: gopickle stores under len(memo)
		s.memoPut(len(s.memo))
		return false, nil
	case 'g': // GET
		l, err := s.line()
		if err != nil {
			return false, err
		}
		i, err := strconv.Atoi(l)
		if err != nil {
			return false, fmt.Errorf("GET index %q", l)
		}
		s.memoGet(i)
		return false, nil
	case 'h': // BINGET
		i, err := s.u8()
		if err != nil {
			return false, err
		}
		s.memoGet(int(i))
		return false, nil
	case 'j': // LONG_BINGET
		i, err := s.u32()
		if err != nil {
			return false, err
		}
		s.memoGet(int(i))
		return false, nil

	// Opcodes that neither push nor pop.
	case 0x80: // PROTO
		if _, err := s.u8(); err != nil {
			return false, err
		}
		keep = true
	case 0x95: // FRAME: the frame's bytes must be present
		n, err := s.u64()
		if err != nil {
			return false, err
		}
		if n > uint64(len(s.data)-s.pos) {
			return false, errTruncated
		}
		keep = true

	// Globals.
	case 'c': // GLOBAL
		mod, err := s.line()
		if err != nil {
			return false, err
		}
		name, err := s.line()
		if err != nil {
			return false, err
		}
		if err := checkGlobal(mod, name); err != nil {
			return false, err
		}
	case 'i': // INST: a class instantiated at load time
		mod, err := s.line()
		if err != nil {
			return false, err
		}
		name, err := s.line()
		if err != nil {
			return false, err
		}
		if err := checkGlobal(mod, name); err != nil {
			return false, err
		}
	case 0x93: // STACK_GLOBAL
		if len(s.top) < 2 || !s.top[0].known || !s.top[1].known {
			return false, &refusal{"pickle asks for a global whose name it computes while loading (STACK_GLOBAL): refused (a state dict needs only tensors)"}
		}
		if err := checkGlobal(s.top[0].s, s.top[1].s); err != nil {
			return false, err
		}

	// Fixed-size arguments.
	case 'K': // BININT1
		_, err = s.u8()
	case 'M': // BININT2
		_, err = s.u16()
	case 'J': // BININT
		_, err = s.u32()
	case 'G': // BINFLOAT
		_, err = s.u64()
	case 'I', 'L', 'F', 'P': // INT, LONG, FLOAT, PERSID (text line)
		var l string
		l, err = s.line()
		if err == nil && op == 'L' && (l == "" || l == "L") {
			err = errors.New("LONG without digits")
		}
	case 0x8a: // LONG1: gopickle indexes the last byte, so zero bytes would panic
		var b []byte
		b, err = s.counted(1)
		if err == nil && len(b) == 0 {
			err = errors.New("LONG1 of zero bytes")
		}
	case 0x8b: // LONG4
		var n uint64
		n, err = s.u32()
		if err == nil {
			switch {
			case int32(n) <= 0:
				err = errors.New("LONG4 with a length that is not positive")
			case n > 1<<16:
				err = fmt.Errorf("LONG4 of %d bytes (no tensor metadata needs an integer that long)", n)
			default:
				_, err = s.need(n)
			}
		}
	case 'B': // BINBYTES
		_, err = s.counted(4)
	case 'C': // SHORT_BINBYTES
		_, err = s.counted(1)
	case 0x8e, 0x96: // BINBYTES8, BYTEARRAY8
		_, err = s.counted(8)

	// Opcodes without arguments.
	case '(', '.', '0', '1', '2', 'N', 'Q', 'R', 'a', 'b', 'd', '}', 'e', 'l', ']', 'o', 's', 't', ')', 'u',
		0x81, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8f, 0x90, 0x91, 0x92:
		if op == '.' {
			return true, nil
		}

	case 0x82, 0x83, 0x84:
		return false, &refusal{"pickle asks for a global from the copyreg extension registry: refused (a state dict needs only tensors)"}
	case 0x97, 0x98:
		return false, errors.New("pickle uses out-of-band buffers (protocol 5 NEXT_BUFFER): refused (torch.save never writes them)")
	default:
		return false, fmt.Errorf("unknown pickle opcode 0x%02x: not a pickle, or a corrupt one", op)
	}
	if err != nil {
		return false, err
	}
	if !keep {
		s.top = s.top[:0]
	}
	return false, nil
}
