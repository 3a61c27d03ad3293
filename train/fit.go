package train

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/internal/text"
	"github.com/ddpm-go/ddpm/model/unet"
)

// loadData reads the run's data set for the network ucfg. Folder images
// are fitted only as Resize and Channels allow (runs from before those
// options, StrictFit false, had every image fitted); a mismatch is one
// line naming the image, what it is, what the config wants and the flag
// that would fit it.
func loadData(o Options, ucfg unet.Config) (*data.Dataset, error) {
	folder := strings.HasPrefix(o.Data, "folder:")
	if (o.Resize || o.Channels != 0) && !folder {
		return nil, invalidf("--resize and --channels fit folder:DIR images to the config; %s has a fixed geometry", o.Data)
	}
	if o.Channels != 0 && o.Channels != ucfg.InCh {
		return nil, invalidf("--channels %d: %s takes %s images; pass --channels %d or pick a config for %s images (%s)",
			o.Channels, o.configLabel(), colour(ucfg.InCh), ucfg.InCh, colour(o.Channels), configsFor(0, o.Channels))
	}
	opts := []data.Option{data.WithSize(ucfg.Res), data.WithChannels(ucfg.InCh)}
	if o.StrictFit {
		opts = append(opts, data.Strict(o.Resize, o.Channels != 0))
	}
	ds, err := data.Load(o.Data, "train", opts...)
	var me *data.MismatchError
	if errors.As(err, &me) {
		return nil, mismatchErr(me, o, ucfg)
	}
	return ds, err
}

// mismatchErr words a folder image that does not fit the config, e.g.
// "folder:photos: cat3.png is 64×48 RGB; config small wants 32×32 grey —
// pass --resize to scale, --channels 1 to convert, or pick a config with
// --config".
func mismatchErr(e *data.MismatchError, o Options, ucfg unet.Config) error {
	want := fmt.Sprintf("%s wants %s", o.configLabel(), data.Shape(ucfg.Res, ucfg.Res, ucfg.InCh))
	if e.Mixed() {
		return fmt.Errorf("folder:%s mixes image sizes (%s is %d×%d, %s is %d×%d); %s — pass --resize to scale them all",
			e.Folder, e.File, e.W, e.H, e.Other, e.OW, e.OH, want)
	}
	var fixes []string
	if e.SizeDiffers() && !o.Resize {
		fixes = append(fixes, "--resize to scale")
	}
	if e.ColourDiffers() && o.Channels == 0 {
		fixes = append(fixes, fmt.Sprintf("--channels %d to convert", ucfg.InCh))
	}
	alt := "pick a config with --config"
	imgCh := 3
	if e.Grey {
		imgCh = 1
	}
	if e.W == e.H {
		if names := configsFor(e.W, imgCh); names != "" {
			alt = "use --config " + names
		}
	}
	fixes = append(fixes, alt)
	hint := strings.Join(fixes, ", ")
	if len(fixes) > 1 {
		hint = strings.Join(fixes[:len(fixes)-1], ", ") + ", or " + fixes[len(fixes)-1]
	}
	return fmt.Errorf("folder:%s: %s is %d×%d %s; %s — pass %s", e.Folder, e.File, e.W, e.H, colour(imgCh), want, hint)
}

// configLabel names the run's network in messages: "config small", or
// the --init model's when it matches no named config.
func (o Options) configLabel() string {
	if o.Config == "" {
		return "the network of --init " + o.Init
	}
	return "config " + o.Config
}

// colour names a channel count.
func colour(c int) string {
	if c == 1 {
		return "grey"
	}
	return "RGB"
}

// configsFor lists the named configs for side×side images (any side when
// side is 0) of c channels, "" when none.
func configsFor(side, c int) string {
	var names []string
	for _, n := range unet.ConfigNames() {
		cfg, _ := unet.ConfigByName(n)
		if (side == 0 || cfg.Res == side) && cfg.InCh == c {
			names = append(names, n)
		}
	}
	return strings.Join(names, " or ")
}

// Describe says what the run trains, for its first line: "config small
// (…M parameters) on folder (8 images), resized to 32×32, batch 32,
// eps/fixedlarge/simple, T=1000, linear schedule".
func (tr *Trainer) Describe() string {
	return fmt.Sprintf("%s (%s parameters) on %s, batch %d, %s/%s/%s, T=%d, %s schedule",
		tr.Opt.configLabel(), text.Count(tr.Model.NumParams()), tr.describeData(), tr.Opt.Batch,
		tr.DCfg.Mean, tr.DCfg.Var, tr.DCfg.Loss, tr.DCfg.T, tr.DCfg.Schedule)
}

// describeData says what the run trains on: the image count and, for a
// folder, how its images were fitted: "folder (8 images), resized to
// 32×32, converted to grey".
func (tr *Trainer) describeData() string {
	s := fmt.Sprintf("%s (%s)", tr.Data.Name, text.Plural(tr.Data.N, "image"))
	if tr.Opt.Resize {
		s += fmt.Sprintf(", resized to %d×%d", tr.UCfg.Res, tr.UCfg.Res)
	}
	if tr.Opt.Channels != 0 {
		s += ", converted to " + colour(tr.Opt.Channels)
	}
	return s
}
