// Package interop moves DDPM models between this project and Hugging Face
// diffusers (and the checkpoints of pesser/pytorch_diffusion, a PyTorch port
// of the original TensorFlow code).
//
// A diffusers DDPM is a UNet2DModel (unet/config.json and its weights) and a
// DDPMScheduler (scheduler/scheduler_config.json), tied together by a
// model_index.json: the layout of google/ddpm-cifar10-32 and its siblings.
// UNet2DModel is the DDPM U-Net with a few more knobs, which the project's
// network (package model/unet) has as optional config fields: asymmetric
// downsampling (TensorFlow's "SAME", which every google/ddpm-* model uses),
// several attention heads, the embedding's flip_sin_to_cos and freq_shift,
// norm_eps. Whatever else a config sets that the project's network cannot
// compute — other block types, scale-shift time conditioning, class
// embeddings, another activation, … — is refused, in one line naming the
// key, never approximated.
//
//   - [UNetConfig] reads a diffusers config.json (absent keys take
//     UNet2DModel's defaults, not DDPM's); [DiffusersUNetConfig] writes one.
//   - [SchedulerConfig] reads a scheduler_config.json into a
//     [diffusion.Config]; [DiffusersSchedulerConfig] writes one.
//   - [NameMap], [ToProject] and [FromProject] map tensor names: diffusers'
//     (to_q/to_k/to_v/to_out.0 attention), old diffusers' (query/key/value/
//     proj_attn, as the google hub files hold them), pesser's, and the
//     project's (attention projections as 1×1 convolutions).
//   - [Load] reads a pipeline folder, a bare UNet2DModel folder or a
//     diffusers-named weights file; [ExportDiffusers] writes a DDPMPipeline
//     folder that diffusers' DDPMPipeline.from_pretrained loads.
//
// PyTorch pickles (.bin, .ckpt) are read through [ReadPickle], which is
// package torchbin's reader (it runs none of the pickle); with ReadPickle
// set to nil they are refused with a line that says how to convert them to
// safetensors.
package interop
