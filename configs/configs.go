// Package configs holds the run configs of the train command, embedded so that
// `go run ./cmd/train` works from any directory. Each file names only the keys it
// changes from train.DefaultConfig; README.md describes them.
//
// Parameter counts of the model-size ladder (byte vocabulary 256, d_state 16,
// expand 2, tied head; per layer 2ED·D + ED·K + ED + (R+2N)·ED + ED·R + 3ED + ED·N + D):
//
//	mamba-0.1m   d_model  64, 3 layers        114,560
//	mamba-0.5m   d_model 128, 4 layers        499,328
//	mamba-2m     d_model 192, 8 layers      2,063,040
//	mamba-8m     d_model 384, 8 layers      7,812,480
//	mamba-30m    d_model 640, 11 layers    29,105,920
//	mamba-130m   d_model 768, 24 layers   129,135,360  (vocabulary 50277 → 50280, the released shape)
//
// and of the Transformer++ ladder matched to it (the paper's rule: at the same width, half the
// Mamba's layers for about the same parameters; heads of 64 channels, 32 at d_model 64, tied head;
// per layer 2D + 4D² + 3D·d_ff + the final norm D):
//
//	transformer-0.1m   d_model  64, 2 layers, d_ff  160       110,912
//	transformer-0.5m   d_model 128, 2 layers, d_ff  448       508,544
//	transformer-2m     d_model 192, 4 layers, d_ff  640     2,115,264
//	transformer-8m     d_model 384, 4 layers, d_ff 1152     7,769,472
//	transformer-30m    d_model 640, 6 layers, d_ff 1664    29,171,840
//	transformer-130m   d_model 768, 12 layers, d_ff 2240  128,877,312
package configs

import "embed"

// FS holds every *.json config of this directory.
//
//go:embed *.json
var FS embed.FS

// Quickstart is the name of the config `train` runs when given none.
const Quickstart = "quickstart.json"
