package cuda

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"github.com/mambago/mamba/internal/cuda/kernels"
)

// kernelNames lists every kernel the package launches; Open resolves them all, so that a stale
// image fails at once rather than in the middle of a step.
var kernelNames = []string{
	"scan_fwd_g1", "scan_fwd_g2", "scan_fwd_g4", "scan_fwd_g8", "scan_fwd_g16",
	"scan_bwd_g1", "scan_bwd_g2", "scan_bwd_g4", "scan_bwd_g8", "scan_bwd_g16", "scan_reduce_bc", "scan_reduce_params",
	"rmsnorm_fwd", "rmsnorm_bwd_dx", "colsum_partial", "sum_parts",
	"conv_fwd", "conv_bwd_dc", "conv_bwd_dx", "conv_bwd_dw_part",
	"add_fwd", "gate_fwd", "gate_bwd", "columns_fwd", "columns_bwd", "bias_add", "scale_f32", "f32_to_bf16", "bf16_to_f32",
	"embed_fwd", "embed_bwd", "ce_fwd", "ce_sum", "ce_bwd",
	"gradnorm_part", "gradnorm_finish", "adamw_step", "conv_step", "ssm_step",
}

// EnvPTXOnly, when set to 1, makes Open load the embedded PTX even where the sm_90 cubin would do
// (to check the PTX path, or after regenerating only the PTX).
const EnvPTXOnly = "MAMBA_CUDA_PTX"

// loadModule loads the embedded kernels: the sm_90 cubin on a compute capability 9.0 device, the
// PTX (compiled by the driver) elsewhere or when the cubin is refused. The caller has entered.
func (d *Device) loadModule() error {
	a := d.api
	var errs []error
	if d.info.Major == 9 && d.info.Minor == 0 && len(kernels.Cubin) > 0 && os.Getenv(EnvPTXOnly) != "1" {
		r := call(a.cuModuleLoadData, uintptr(unsafe.Pointer(&d.module)), uintptr(unsafe.Pointer(&kernels.Cubin[0])))
		if err := a.check("cuModuleLoadData(cubin sm_90)", r); err == nil {
			d.info.Image = "cubin sm_90"
		} else {
			errs = append(errs, err)
			d.module = 0
		}
	}
	if d.module == 0 {
		ptx := make([]byte, len(kernels.PTX)+1) // NUL-terminated
		copy(ptx, kernels.PTX)
		r := call(a.cuModuleLoadData, uintptr(unsafe.Pointer(&d.module)), uintptr(unsafe.Pointer(&ptx[0])))
		if err := a.check("cuModuleLoadData(ptx)", r); err != nil {
			return errors.Join(append(errs, err)...)
		}
		d.info.Image = "ptx"
	}
	for _, name := range kernelNames {
		cname := append([]byte(name), 0)
		var f uintptr
		r := call(a.cuModuleGetFunction, uintptr(unsafe.Pointer(&f)), d.module, uintptr(unsafe.Pointer(&cname[0])))
		if err := a.check(fmt.Sprintf("cuModuleGetFunction(%s)", name), r); err != nil {
			return err
		}
		d.fn[name] = f
	}
	return nil
}

// function is a resolved kernel with its name, for launches and error messages.
type function struct {
	name string
	f    uintptr
}

func (d *Device) function(name string) function {
	f, ok := d.fn[name]
	if !ok {
		panic("cuda: kernel " + name + " is not in kernelNames")
	}
	return function{name, f}
}
