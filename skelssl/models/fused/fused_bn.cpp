// Fused training-mode BatchNorm of an ST-GCN block with what follows it, for contiguous float32
// (N, C, S) feature maps on the CPU, forward and backward:
//
//   u = x + offset[c, s]                      (optional: the graph convolution's bias, per channel and joint)
//   y = act((u - mean) * invstd * w + b) * keep / (1 - p) + residual)      (keep, residual, act optional)
//
//   backward: gp = g * [y > 0] (ReLU), gd = gp * keep / (1 - p) (dropout),
//             grad_b = sum gd, grad_w = sum gd * uhat,
//             grad_x = w * invstd * (gd - grad_b / M - uhat * grad_w / M),  M = N * S,
//             grad_residual = gp, grad_offset[c, s] = sum_n grad_x[n, c, s]
//
// Why: these steps are bound by memory traffic, and PyTorch runs them as four to six kernels, each reading
// and writing the whole feature map. Here the forward reads the input twice (statistics, then output) and
// the backward twice. The dropout mask is not stored: keep[i] is a hash of (seed, i) (splitmix64), drawn
// again in the backward; it is kept with probability 1 - p (to 2^-32).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace {

struct Shape {
  int64_t n, c, s;
};

Shape check_features(const torch::Tensor& x, const char* name) {
  TORCH_CHECK(x.device().is_cpu(), name, " must be on the CPU");
  TORCH_CHECK(x.scalar_type() == torch::kFloat32, name, " must be float32, got ", x.scalar_type());
  TORCH_CHECK(x.is_contiguous(), name, " must be contiguous");
  TORCH_CHECK(x.dim() >= 2, name, " must have a batch and a channel dimension");
  const int64_t n = x.size(0), c = x.size(1);
  const int64_t s = c == 0 || n == 0 ? 0 : x.numel() / (n * c);
  return {n, c, s};
}

void check_like(const torch::Tensor& t, const torch::Tensor& x, const char* name) {
  TORCH_CHECK(t.sizes() == x.sizes(), name, " must have the shape of the input");
  TORCH_CHECK(t.is_contiguous() && t.scalar_type() == torch::kFloat32, name, " must be contiguous float32");
}

const float* checked_offset(const c10::optional<torch::Tensor>& offset, const Shape& sh) {
  if (!offset.has_value() || !offset->defined()) return nullptr;
  TORCH_CHECK(offset->dim() == 2 && offset->size(0) == sh.c && offset->size(1) == sh.s,
              "offset must be (C, S) = (", sh.c, ", ", sh.s, ")");
  TORCH_CHECK(offset->is_contiguous() && offset->scalar_type() == torch::kFloat32,
              "offset must be contiguous float32");
  return offset->data_ptr<float>();
}

// Dropout: element idx is kept when a 32-bit hash of (seed, idx) is >= threshold. Two rounds of the
// "lowbias32" integer hash (C. Wellons), 32-bit arithmetic so that it vectorises.
struct Dropout {
  uint32_t seed_lo = 0, seed_hi = 0;
  uint32_t threshold = 0;
  float scale = 1.f;
};

Dropout make_dropout(double p, int64_t seed) {
  TORCH_CHECK(p >= 0.0 && p < 1.0, "dropout probability must be in [0, 1), got ", p);
  Dropout d;
  d.seed_lo = static_cast<uint32_t>(static_cast<uint64_t>(seed));
  d.seed_hi = static_cast<uint32_t>(static_cast<uint64_t>(seed) >> 32);
  d.threshold = static_cast<uint32_t>(std::min(std::llround(p * 4294967296.0), 4294967295LL));
  d.scale = static_cast<float>(1.0 / (1.0 - p));
  return d;
}

inline uint32_t lowbias32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// key: the element's index modulo 2^32 (feature maps have fewer elements).
inline bool kept(uint32_t key, uint32_t seed_lo, uint32_t seed_hi, uint32_t threshold) {
  return lowbias32(lowbias32(key ^ seed_lo) + seed_hi) >= threshold;
}

// The row loops, as functions of plain pointers and scalars so that they vectorise.
template <bool kOffset, bool kDrop, bool kResidual, bool kRelu>
void output_row(const float* __restrict x, const float* __restrict off, const float* __restrict res,
                float* __restrict y, int64_t len, float scale, float shift, uint32_t base32, uint32_t seed_lo,
                uint32_t seed_hi, uint32_t threshold, float keep_scale) {
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) {
    float v = (kOffset ? x[i] + off[i] : x[i]) * scale + shift;
    if constexpr (kDrop) v = kept(base32 + static_cast<uint32_t>(i), seed_lo, seed_hi, threshold) ? v * keep_scale : 0.f;
    if constexpr (kResidual) v += res[i];
    if constexpr (kRelu) v = v > 0.f ? v : 0.f;
    y[i] = v;
  }
}

template <bool kOffset, bool kDrop, bool kResidual, bool kRelu>
void gradient_sums_row(const float* __restrict g, const float* __restrict x, const float* __restrict off,
                       const float* __restrict y, float* __restrict residual_grad, int64_t len, float mean,
                       float invstd, uint32_t base32, uint32_t seed_lo, uint32_t seed_hi, uint32_t threshold,
                       float keep_scale, float& sum_g, float& sum_gx) {
  float a = 0.f, q = 0.f;
#pragma omp simd reduction(+ : a, q)
  for (int64_t i = 0; i < len; ++i) {
    float gv = g[i];
    if constexpr (kRelu) gv = y[i] > 0.f ? gv : 0.f;
    if constexpr (kResidual) residual_grad[i] = gv;
    if constexpr (kDrop) gv = kept(base32 + static_cast<uint32_t>(i), seed_lo, seed_hi, threshold) ? gv * keep_scale : 0.f;
    a += gv;
    q += gv * (((kOffset ? x[i] + off[i] : x[i]) - mean) * invstd);
  }
  sum_g = a;
  sum_gx = q;
}

template <bool kOffset, bool kDrop, bool kRelu>
void input_gradient_row(const float* __restrict g, const float* __restrict x, const float* __restrict off,
                        const float* __restrict y, float* __restrict out, int64_t len, float mean, float invstd,
                        float factor, float mean_g, float mean_gx, uint32_t base32, uint32_t seed_lo,
                        uint32_t seed_hi, uint32_t threshold, float keep_scale) {
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) {
    float gd = g[i];  // the gradient reaching the BatchNorm output, as in gradient_sums_row
    if constexpr (kRelu) gd = y[i] > 0.f ? gd : 0.f;
    if constexpr (kDrop) gd = kept(base32 + static_cast<uint32_t>(i), seed_lo, seed_hi, threshold) ? gd * keep_scale : 0.f;
    out[i] = factor * (gd - mean_g - (((kOffset ? x[i] + off[i] : x[i]) - mean) * invstd) * mean_gx);
  }
}

inline void add_row(const float* __restrict from, int64_t len, float* __restrict to) {
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) to[i] += from[i];
}

// Sums per channel over (N, S) of two quantities produced by row(n, c, s1, s2), reading the feature map in
// memory order: N is split into one chunk per thread, each with its own partial sums (in double), which are
// then added up. Returns [2 * C]: the first quantity's sums, then the second's.
template <typename Row>
std::vector<double> channel_sums(const Shape& sh, Row&& row) {
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(sh.n, at::get_num_threads()));
  std::vector<double> partial(static_cast<size_t>(chunks * 2 * sh.c), 0.0);
  at::parallel_for(0, chunks, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      double* acc = partial.data() + k * 2 * sh.c;
      for (int64_t n = k * sh.n / chunks; n < (k + 1) * sh.n / chunks; ++n) {
        for (int64_t c = 0; c < sh.c; ++c) {
          float s1 = 0.f, s2 = 0.f;
          row(n, c, s1, s2);
          acc[c] += s1;
          acc[sh.c + c] += s2;
        }
      }
    }
  });
  std::vector<double> sums(static_cast<size_t>(2 * sh.c), 0.0);
  for (int64_t k = 0; k < chunks; ++k)
    for (int64_t j = 0; j < 2 * sh.c; ++j) sums[j] += partial[k * 2 * sh.c + j];
  return sums;
}

// Calls f(std::bool_constant<a>, ..., ...) so that the row loops are compiled without branches.
template <typename F>
void dispatch4(bool a, bool b, bool c, bool d, F&& f) {
  auto with_d = [&](auto ta, auto tb, auto tc) {
    if (d) f(ta, tb, tc, std::true_type{}); else f(ta, tb, tc, std::false_type{});
  };
  auto with_c = [&](auto ta, auto tb) {
    if (c) with_d(ta, tb, std::true_type{}); else with_d(ta, tb, std::false_type{});
  };
  auto with_b = [&](auto ta) {
    if (b) with_c(ta, std::true_type{}); else with_c(ta, std::false_type{});
  };
  if (a) with_b(std::true_type{}); else with_b(std::false_type{});
}

}  // namespace

// Returns (y, mean, invstd, biased variance) of u = x + offset.
std::vector<torch::Tensor> bn_act_forward(const torch::Tensor& x, const torch::Tensor& weight,
                                          const torch::Tensor& bias, double eps,
                                          const c10::optional<torch::Tensor>& offset, double dropout_p,
                                          int64_t seed, const c10::optional<torch::Tensor>& residual,
                                          bool relu) {
  const Shape sh = check_features(x, "input");
  TORCH_CHECK(sh.n * sh.s > 1, "BatchNorm in training needs more than one value per channel");
  const float* op = checked_offset(offset, sh);
  const bool has_residual = residual.has_value() && residual->defined();
  if (has_residual) check_like(*residual, x, "residual");
  const Dropout drop = make_dropout(dropout_p, seed);
  const uint32_t seed_lo = drop.seed_lo, seed_hi = drop.seed_hi, threshold = drop.threshold;
  const float keep_scale = drop.scale;
  auto w = weight.contiguous().to(torch::kFloat32);
  auto b = bias.contiguous().to(torch::kFloat32);
  auto mean = torch::empty({sh.c}, x.options());
  auto invstd = torch::empty({sh.c}, x.options());
  auto var = torch::empty({sh.c}, x.options());
  auto y = torch::empty_like(x);

  const float* xp = x.data_ptr<float>();
  float* meanp = mean.data_ptr<float>();
  float* invp = invstd.data_ptr<float>();
  float* varp = var.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  const float* bp = b.data_ptr<float>();
  const float* rp = has_residual ? residual->data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  const int64_t cs = sh.c * sh.s;
  const double count = static_cast<double>(sh.n * sh.s);

  dispatch4(op != nullptr, dropout_p > 0.0, has_residual, relu, [&](auto t_offset, auto t_drop, auto t_res,
                                                                    auto t_relu) {
    constexpr bool kOffset = decltype(t_offset)::value, kDrop = decltype(t_drop)::value;
    constexpr bool kResidual = decltype(t_res)::value, kRelu = decltype(t_relu)::value;
    // Statistics per channel, shifted by the channel's first value against cancellation.
    const std::vector<double> sums = channel_sums(sh, [&](int64_t n, int64_t c, float& s1, float& s2) {
      const float* __restrict row = xp + n * cs + c * sh.s;
      const float* __restrict off = kOffset ? op + c * sh.s : nullptr;
      const float shift = xp[c * sh.s] + (kOffset ? op[c * sh.s] : 0.f);
      float a = 0.f, q = 0.f;
#pragma omp simd reduction(+ : a, q)
      for (int64_t i = 0; i < sh.s; ++i) {
        const float d = row[i] + (kOffset ? off[i] : 0.f) - shift;
        a += d;
        q += d * d;
      }
      s1 = a;
      s2 = q;
    });
    for (int64_t c = 0; c < sh.c; ++c) {
      const double shift = xp[c * sh.s] + (kOffset ? op[c * sh.s] : 0.f);
      const double mean_shifted = sums[c] / count;
      const double variance = std::max(0.0, sums[sh.c + c] / count - mean_shifted * mean_shifted);
      meanp[c] = static_cast<float>(shift + mean_shifted);
      varp[c] = static_cast<float>(variance);
      invp[c] = static_cast<float>(1.0 / std::sqrt(variance + eps));
    }
    at::parallel_for(0, sh.n * sh.c, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t c = p % sh.c, base = p * sh.s;
        const float scale = wp[c] * invp[c];
        const float shift = bp[c] - meanp[c] * scale;
        const float* __restrict xr = xp + base;
        const float* __restrict off = kOffset ? op + c * sh.s : nullptr;
        const float* __restrict rr = kResidual ? rp + base : nullptr;
        float* __restrict yr = yp + base;
        output_row<kOffset, kDrop, kResidual, kRelu>(xr, off, rr, yr, sh.s, scale, shift, static_cast<uint32_t>(base),
                                                     seed_lo, seed_hi, threshold, keep_scale);
      }
    });
  });
  return {y, mean, invstd, var};
}

// Returns (grad_x, grad_weight, grad_bias, grad_residual, grad_offset); the last two are undefined unless
// asked for.
std::vector<torch::Tensor> bn_act_backward(const torch::Tensor& grad_y, const torch::Tensor& x,
                                           const torch::Tensor& y, const torch::Tensor& mean,
                                           const torch::Tensor& invstd, const torch::Tensor& weight,
                                           const c10::optional<torch::Tensor>& offset, double dropout_p,
                                           int64_t seed, bool relu, bool residual_grad, bool offset_grad) {
  const Shape sh = check_features(x, "input");
  auto g = grad_y.contiguous();
  check_like(g, x, "grad_output");
  if (relu) check_like(y, x, "output");
  const float* op = checked_offset(offset, sh);
  TORCH_CHECK(!offset_grad || op != nullptr, "offset_grad needs the offset");
  const Dropout drop = make_dropout(dropout_p, seed);
  const uint32_t seed_lo = drop.seed_lo, seed_hi = drop.seed_hi, threshold = drop.threshold;
  const float keep_scale = drop.scale;
  auto w = weight.contiguous().to(torch::kFloat32);

  auto grad_x = torch::empty_like(x);
  auto grad_w = torch::empty({sh.c}, x.options());
  auto grad_b = torch::empty({sh.c}, x.options());
  // With ReLU the residual's gradient is the masked gradient; without, it is grad_y itself.
  torch::Tensor grad_r;
  if (residual_grad) grad_r = relu ? torch::empty_like(x) : g;
  torch::Tensor grad_offset;

  const float* gp = g.data_ptr<float>();
  const float* xp = x.data_ptr<float>();
  const float* yp = relu ? y.data_ptr<float>() : nullptr;
  const float* meanp = mean.data_ptr<float>();
  const float* invp = invstd.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  float* grp = residual_grad && relu ? grad_r.data_ptr<float>() : nullptr;
  float* gxp = grad_x.data_ptr<float>();
  float* gwp = grad_w.data_ptr<float>();
  float* gbp = grad_b.data_ptr<float>();
  const int64_t cs = sh.c * sh.s;
  const double count = static_cast<double>(sh.n * sh.s);

  dispatch4(op != nullptr, dropout_p > 0.0, grp != nullptr, relu, [&](auto t_offset, auto t_drop,
                                                                      auto t_res, auto t_relu) {
    constexpr bool kOffset = decltype(t_offset)::value, kDrop = decltype(t_drop)::value;
    constexpr bool kResidual = decltype(t_res)::value, kRelu = decltype(t_relu)::value;
    // Pass 1: per channel, sums of gd and of gd * uhat (and the masked gradient for the residual).
    const std::vector<double> sums = channel_sums(sh, [&](int64_t n, int64_t c, float& s1, float& s2) {
      const int64_t base = n * cs + c * sh.s;
      const float mu = meanp[c], is = invp[c];
      const float* __restrict gr = gp + base;
      const float* __restrict xr = xp + base;
      const float* __restrict yr = kRelu ? yp + base : nullptr;
      const float* __restrict off = kOffset ? op + c * sh.s : nullptr;
      float* __restrict rr = kResidual ? grp + base : nullptr;
      gradient_sums_row<kOffset, kDrop, kResidual, kRelu>(gr, xr, off, yr, rr, sh.s, mu, is, static_cast<uint32_t>(base),
                                                          seed_lo, seed_hi, threshold, keep_scale, s1, s2);
    });
    for (int64_t c = 0; c < sh.c; ++c) {
      gbp[c] = static_cast<float>(sums[c]);
      gwp[c] = static_cast<float>(sums[sh.c + c]);
    }
    // Pass 2: grad_x, one chunk of samples per thread, with its own partial offset gradient.
    const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(sh.n, at::get_num_threads()));
    std::vector<float> partial(offset_grad ? static_cast<size_t>(chunks * cs) : 0, 0.f);
    at::parallel_for(0, chunks, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        float* acc = offset_grad ? partial.data() + k * cs : nullptr;
        for (int64_t n = k * sh.n / chunks; n < (k + 1) * sh.n / chunks; ++n) {
          for (int64_t c = 0; c < sh.c; ++c) {
            const int64_t base = n * cs + c * sh.s;
            const float mu = meanp[c], is = invp[c], factor = wp[c] * is;
            const float mean_g = static_cast<float>(gbp[c] / count);
            const float mean_gx = static_cast<float>(gwp[c] / count);
            const float* __restrict gr = gp + base;
            const float* __restrict xr = xp + base;
            const float* __restrict yr = kRelu ? yp + base : nullptr;
            const float* __restrict off = kOffset ? op + c * sh.s : nullptr;
            float* __restrict out = gxp + base;
            input_gradient_row<kOffset, kDrop, kRelu>(gr, xr, off, yr, out, sh.s, mu, is, factor, mean_g, mean_gx,
                                                      static_cast<uint32_t>(base), seed_lo, seed_hi, threshold,
                                                      keep_scale);
            if (acc) add_row(out, sh.s, acc + c * sh.s);
          }
        }
      }
    });
    if (offset_grad) {
      grad_offset = torch::zeros({sh.c, sh.s}, x.options());
      float* go = grad_offset.data_ptr<float>();
      for (int64_t k = 0; k < chunks; ++k)
        for (int64_t j = 0; j < cs; ++j) go[j] += partial[k * cs + j];
    }
  });
  return {grad_x, grad_w, grad_b, grad_r, grad_offset};
}
