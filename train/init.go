package train

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/internal/text"
	"github.com/ddpm-go/ddpm/model/unet"
)

// Init is the trained model a new run starts from (Options.Init, --init):
// fine-tuning, or continuing a model whose optimizer state is gone. The run
// carries its process and network unless told otherwise (Setup.Given).
type Init struct {
	Net     *unet.UNet       // its network, with the weights to start from (EMA)
	Process diffusion.Config // the diffusion process it was trained with
	// Metadata is its file's safetensors metadata (nil: none), where its
	// training options and data are recorded (see FileMetadata).
	Metadata map[string]string

	name string // Options.Init, for messages
}

// recorded is the training options the model's file records (zero: none).
func (m *Init) recorded() Options {
	var o Options
	if s := m.Metadata["train"]; s != "" {
		_ = json.Unmarshal([]byte(s), &o)
	}
	return o
}

// carry copies the init model's diffusion process into dc, setting by
// setting, except where given, and its training data into o unless --data
// is given: --init continues a model on its own process, so that --init
// mnist keeps the shipped model's cosine schedule.
func (m *Init) carry(given Given, o *Options, dc *diffusion.Config) {
	p := m.Process
	if !given["T"] {
		dc.T = p.T
	}
	if !given["beta-start"] {
		dc.BetaStart = p.BetaStart
	}
	if !given["beta-end"] {
		dc.BetaEnd = p.BetaEnd
	}
	if !given["schedule"] {
		dc.Schedule = p.Schedule
	}
	if !given["mean"] {
		dc.Mean = p.Mean
	}
	if !given["var"] && p.Var != diffusion.Fitted {
		dc.Var = p.Var
	}
	if !given["loss"] {
		dc.Loss = p.Loss
	}
	if !given["clip"] {
		dc.Clip = p.Clip
	}
	if spec, _ := checkpoint.TrainingData(m.Metadata); !given["data"] && spec != "" {
		o.Data = spec
	}
}

// configName is the name of the init model's network: the config its file
// records when that is still the same network, else a named config of the
// same shape, else "" (a network of its own).
func (m *Init) configName() string {
	have := m.Net.Config()
	if n := m.recorded().Config; n != "" {
		if cfg, err := unet.ConfigByName(n); err == nil && sameNetwork(cfg, have) {
			return n
		}
	}
	for _, n := range unet.ConfigNames() {
		if cfg, _ := unet.ConfigByName(n); sameNetwork(cfg, have) {
			return n
		}
	}
	return ""
}

// sameNetwork compares two configs' networks, dropout (a training setting)
// and the output channels (set by the variance) aside.
func sameNetwork(a, b unet.Config) bool {
	a, b = a.Normalized(), b.Normalized()
	a.Dropout, b.Dropout = 0, 0
	a.OutCh, b.OutCh = 0, 0
	return reflect.DeepEqual(a.Normalized(), b.Normalized())
}

// matches refuses a run whose network (ucfg, OutCh set by the variance)
// is not the init model's, naming what would match.
func (m *Init) matches(given Given, config string, ucfg unet.Config, dc diffusion.Config) error {
	have := m.Net.Config()
	if !sameNetwork(ucfg, have) {
		if name := m.configName(); name != "" {
			return invalidf("--init %s is a %s network (%s); --config %s is another (%s): pass --config %s, or leave --config out to train the init model's network",
				m.name, name, describeNet(have), config, describeNet(ucfg), name)
		}
		return invalidf("--init %s is a network no named config matches (%s); --config %s is another (%s): leave --config out to train the init model's network",
			m.name, describeNet(have), config, describeNet(ucfg))
	}
	if ucfg.OutCh != have.OutCh {
		how := "--var " + dc.Var.String()
		if !given["var"] {
			how = "the variance " + dc.Var.String()
		}
		return invalidf("--init %s outputs %s (trained with --var %s); %s needs %d: leave --var out to keep the init model's",
			m.name, text.Plural(have.OutCh, "channel"), m.Process.Var, how, ucfg.OutCh)
	}
	return nil
}

// describeNet is a network's shape in a line: "28×28 grey, ch 16 × [1 2 4],
// blocks [2 2 3], attention at 7×7, 1.22M parameters".
func describeNet(c unet.Config) string {
	c = c.Normalized()
	blocks := make([]int, len(c.ChMult))
	for i := range blocks {
		blocks[i] = c.Blocks(i)
	}
	attn := make([]string, len(c.AttnRes))
	for i, r := range c.AttnRes {
		attn[i] = fmt.Sprintf("%d×%d", r, r)
	}
	return fmt.Sprintf("%s, ch %d × %v, blocks %v, attention at %s, %s parameters",
		data.Shape(c.Res, c.Res, c.InCh), c.Ch, c.ChMult, blocks, strings.Join(attn, ", "), text.Count(unet.NumParams(c)))
}

// FileMetadata reads the __metadata__ of a safetensors file (a checkpoint
// or weights file) from its header alone, without its tensors: Init's
// Metadata for a model read from a file.
func FileMetadata(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if n > 16<<20 {
		return nil, fmt.Errorf("%s: header of %d bytes", path, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var h struct {
		Meta map[string]string `json:"__metadata__"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return h.Meta, nil
}
