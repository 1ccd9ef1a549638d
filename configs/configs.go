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
package configs

import "embed"

// FS holds every *.json config of this directory.
//
//go:embed *.json
var FS embed.FS

// Quickstart is the name of the config `train` runs when given none.
const Quickstart = "quickstart.json"
