// Package kernels holds the CUDA C sources of package cuda's kernels and what nvcc made of them,
// embedded: PTX for compute_90 (the driver compiles it for the GPU it runs on) and a cubin for
// sm_90 (Hopper: H100, H200), with the SHA-256 of the sources they were made from.
//
// Regenerate after editing a .cu or .cuh file (nvcc 11.8 or later on the PATH; no GPU needed):
//
//	go generate ./internal/cuda/kernels
//
// which runs, in this folder,
//
//	nvcc -std=c++17 -O3 -arch=compute_90 -ptx mamba.cu -o mamba.ptx
//	nvcc -std=c++17 -O3 -gencode=arch=compute_90,code=sm_90 -cubin -Xptxas -v mamba.cu -o mamba_sm90.cubin
//
// and writes gen.go (hash, nvcc version, flags) and resources.txt (ptxas's report of registers,
// shared memory and spills per kernel). A test fails when the sources no longer match the hash.
package kernels

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"sort"
)

//go:generate go run ./gen

// PTX is the kernels as PTX text for compute_90 (not NUL-terminated).
//
//go:embed mamba.ptx
var PTX []byte

// Cubin is the kernels compiled for sm_90.
//
//go:embed mamba_sm90.cubin
var Cubin []byte

// Sources are the CUDA C files PTX and Cubin were compiled from.
//
//go:embed *.cu *.cuh
var Sources embed.FS

// SourceHash returns the hex SHA-256 over the sources' names and contents, in name order.
func SourceHash(fsys fs.FS) (string, error) {
	var names []string
	for _, pattern := range []string{"*.cu", "*.cuh"} {
		m, err := fs.Glob(fsys, pattern)
		if err != nil {
			return "", err
		}
		names = append(names, m...)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return "", err
		}
		h.Write([]byte(n + "\n"))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
