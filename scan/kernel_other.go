//go:build !amd64

package scan

// hasAVX2 is false off amd64: the pure-Go loops run.
const hasAVX2 = false

// useAVX2 is a no-op off amd64.
func useAVX2(bool) {}
