package kernels

import "testing"

// TestSourcesMatchGenerated fails when a .cu or .cuh file changed after the PTX and cubin were
// generated: run go generate ./internal/cuda/kernels (see the package doc).
func TestSourcesMatchGenerated(t *testing.T) {
	h, err := SourceHash(Sources)
	if err != nil {
		t.Fatal(err)
	}
	if h != SourceSHA256 {
		t.Fatalf("kernel sources hash to %s but the embedded PTX and cubin were made from %s: run go generate ./internal/cuda/kernels", h, SourceSHA256)
	}
	if len(PTX) == 0 || len(Cubin) == 0 {
		t.Fatalf("empty PTX (%d bytes) or cubin (%d bytes)", len(PTX), len(Cubin))
	}
	t.Logf("kernels made by nvcc %s: %s", NVCC, Commands)
}
