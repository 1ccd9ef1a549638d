// The one translation unit compiled by go generate (see ../generate.go): every kernel of the package.
#include "scan.cu"
#include "norm.cu"
#include "reduce.cu"
#include "conv.cu"
#include "elementwise.cu"
#include "embed.cu"
#include "adamw.cu"
#include "decode.cu"
