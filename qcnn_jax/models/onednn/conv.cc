// oneDNN convolutions as XLA FFI custom calls (CPU): forward, input gradient and kernel gradient of
// a bias-free 2-D convolution, NHWC activations and HWIO kernels in float32, square kernel, equal
// stride and symmetric padding on both spatial axes. Built by `python -m qcnn_jax.models.onednn.build`.
//
// oneDNN picks its own kernel layout (format "any"); the HWIO kernel is reordered into it on every
// call (at most 2.4 M floats in ResNet-50) and the kernel gradient back to HWIO. Primitives are
// created once per shape and cached (their creation JIT-compiles oneDNN's kernels); XLA runs them on
// any of its threads, so each gets its scratchpad from the calling thread (scratchpad mode "user"):
// oneDNN's default shares one scratchpad among primitives and ties each to the thread that created it.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;

namespace {

enum class Pass { kForward, kInputGrad, kKernelGrad };
// (pass, N, H, W, C, k, F, stride, pad)
using Key = std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

struct Shapes {
  memory::dims src, weights, dst, strides, pad;
};

Shapes ShapesOf(int64_t n, int64_t h, int64_t w, int64_t c, int64_t k, int64_t f, int64_t s, int64_t p) {
  int64_t oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
  return {{n, c, h, w}, {f, c, k, k}, {n, f, oh, ow}, {s, s}, {p, p}};
}

struct Primitive {
  dnnl::primitive primitive;
  memory::desc weights;     // the kernel's (or kernel gradient's) layout chosen by oneDNN
  memory::desc scratchpad;  // the temporary buffer one execution needs
};

dnnl::primitive_attr UserScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::convolution_forward::primitive_desc ForwardPd(const Shapes& d) {
  auto f32 = memory::data_type::f32;
  return dnnl::convolution_forward::primitive_desc(
      Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
      memory::desc(d.src, f32, memory::format_tag::nhwc), memory::desc(d.weights, f32, memory::format_tag::any),
      memory::desc(d.dst, f32, memory::format_tag::nhwc), d.strides, d.pad, d.pad, UserScratchpad());
}

Primitive Create(Pass pass, const Shapes& d) {
  auto f32 = memory::data_type::f32;
  auto forward = ForwardPd(d);
  if (pass == Pass::kForward) {
    return {dnnl::convolution_forward(forward), forward.weights_desc(), forward.scratchpad_desc()};
  }
  if (pass == Pass::kInputGrad) {
    dnnl::convolution_backward_data::primitive_desc pd(
        Engine(), dnnl::algorithm::convolution_direct, memory::desc(d.src, f32, memory::format_tag::nhwc),
        memory::desc(d.weights, f32, memory::format_tag::any), memory::desc(d.dst, f32, memory::format_tag::nhwc),
        d.strides, d.pad, d.pad, forward, UserScratchpad());
    return {dnnl::convolution_backward_data(pd), pd.weights_desc(), pd.scratchpad_desc()};
  }
  dnnl::convolution_backward_weights::primitive_desc pd(
      Engine(), dnnl::algorithm::convolution_direct, memory::desc(d.src, f32, memory::format_tag::nhwc),
      memory::desc(d.weights, f32, memory::format_tag::any), memory::desc(d.dst, f32, memory::format_tag::nhwc),
      d.strides, d.pad, d.pad, forward, UserScratchpad());
  return {dnnl::convolution_backward_weights(pd), pd.diff_weights_desc(), pd.scratchpad_desc()};
}

const Primitive& Cached(Pass pass, const Shapes& d, const Key& key) {
  static std::mutex mutex;
  static std::map<Key, std::unique_ptr<Primitive>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = cache[key];
  if (!slot) slot = std::make_unique<Primitive>(Create(pass, d));
  return *slot;
}

enum Slot { kWeights, kScratchpad };

// A reusable buffer of at least `bytes` bytes, 64-byte aligned, one per slot and thread (the kernel
// in oneDNN's layout, the scratchpad: allocating per call cost page-faulting allocations of MBs).
void* Scratch(Slot slot, size_t bytes) {
  thread_local std::vector<char> buffers[2];
  auto& buffer = buffers[slot];
  if (buffer.size() < bytes + 64) buffer.resize(bytes + 64);
  auto address = reinterpret_cast<uintptr_t>(buffer.data());
  return reinterpret_cast<void*>((address + 63) & ~uintptr_t{63});
}

// Runs one pass. x: (N, H, W, C); kernel: (k, k, C, F); y: (N, H', W', F). The pass's inputs are
// read and its output written through these pointers (the output is x, kernel or y by pass).
// One pass runs at a time in a process: XLA may start independent custom calls on several of its
// threads at once, each the master of its own OpenMP team, but every pass already uses all of
// oneDNN's threads (two teams on the same cores only wait in each other's spin barriers).
ffi::Error Run(Pass pass, int64_t n, int64_t h, int64_t w, int64_t c, int64_t k, int64_t f, int64_t s,
               int64_t p, float* x, float* kernel, float* y) {
  static std::mutex running;
  std::lock_guard<std::mutex> lock(running);
  try {
    Shapes d = ShapesOf(n, h, w, c, k, f, s, p);
    const Primitive& prim = Cached(pass, d, Key(static_cast<int>(pass), n, h, w, c, k, f, s, p));
    auto f32 = memory::data_type::f32;
    dnnl::stream stream(Engine());
    memory src(memory::desc(d.src, f32, memory::format_tag::nhwc), Engine(), x);
    memory dst(memory::desc(d.dst, f32, memory::format_tag::nhwc), Engine(), y);
    memory user_weights(memory::desc(d.weights, f32, memory::format_tag::hwio), Engine(), kernel);
    bool same = prim.weights == user_weights.get_desc();
    memory weights = same ? user_weights : memory(prim.weights, Engine(), Scratch(kWeights, prim.weights.get_size()));
    memory scratchpad(prim.scratchpad, Engine(), Scratch(kScratchpad, prim.scratchpad.get_size()));
    if (pass != Pass::kKernelGrad && !same) dnnl::reorder(user_weights, weights).execute(stream, user_weights, weights);
    if (pass == Pass::kForward) {
      prim.primitive.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst},
                                     {DNNL_ARG_SCRATCHPAD, scratchpad}});
    } else if (pass == Pass::kInputGrad) {
      prim.primitive.execute(stream, {{DNNL_ARG_DIFF_DST, dst}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DIFF_SRC, src},
                                     {DNNL_ARG_SCRATCHPAD, scratchpad}});
    } else {
      prim.primitive.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, dst}, {DNNL_ARG_DIFF_WEIGHTS, weights},
                                     {DNNL_ARG_SCRATCHPAD, scratchpad}});
      if (!same) dnnl::reorder(weights, user_weights).execute(stream, weights, user_weights);
    }
    stream.wait();
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("oneDNN: ") + e.what());
  }
  return ffi::Error::Success();
}

using F32 = ffi::Buffer<ffi::F32, 4>;
using F32Out = ffi::ResultBuffer<ffi::F32, 4>;

ffi::Error Forward(F32 x, F32 kernel, F32Out y, int64_t stride, int64_t pad) {
  auto xd = x.dimensions(), kd = kernel.dimensions();
  return Run(Pass::kForward, xd[0], xd[1], xd[2], xd[3], kd[0], kd[3], stride, pad, x.typed_data(),
             kernel.typed_data(), y->typed_data());
}

ffi::Error InputGrad(F32 g, F32 kernel, F32Out x_grad, int64_t stride, int64_t pad) {
  auto xd = x_grad->dimensions(), kd = kernel.dimensions();
  return Run(Pass::kInputGrad, xd[0], xd[1], xd[2], xd[3], kd[0], kd[3], stride, pad, x_grad->typed_data(),
             kernel.typed_data(), g.typed_data());
}

ffi::Error KernelGrad(F32 x, F32 g, F32Out kernel_grad, int64_t stride, int64_t pad) {
  auto xd = x.dimensions(), kd = kernel_grad->dimensions();
  return Run(Pass::kKernelGrad, xd[0], xd[1], xd[2], xd[3], kd[0], kd[3], stride, pad, x.typed_data(),
             kernel_grad->typed_data(), g.typed_data());
}

}  // namespace

#define QCNN_CONV_HANDLER(name, fn)                                                                  \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(name, fn,                                                            \
                                ffi::Ffi::Bind().Arg<F32>().Arg<F32>().Ret<F32>().Attr<int64_t>("stride") \
                                    .Attr<int64_t>("pad"));

QCNN_CONV_HANDLER(QcnnOnednnConvForward, Forward)
QCNN_CONV_HANDLER(QcnnOnednnConvInputGrad, InputGrad)
QCNN_CONV_HANDLER(QcnnOnednnConvKernelGrad, KernelGrad)
