// The spatial graph product of an ST-GCN block on the CPU, float32, forward and backward:
//
//   z[n, c*K + k, t, w] = sum_v x[n, c, t, v] * A[k, v, w]
//
// written straight into the channel order the following 1x1 convolution reads (no permuted copy), one
// (n, c) slab of T x V values at a time while it is in cache, with register-blocked loops over matrices
// padded to whole 512-bit vectors.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace {

constexpr int64_t kLanes = 16;

int64_t padded(int64_t width) { return (width + kLanes - 1) / kLanes * kLanes; }

void check_input(const torch::Tensor& t, const char* name, int64_t dim) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU");
  TORCH_CHECK(t.scalar_type() == torch::kFloat32, name, " must be float32, got ", t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
  TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dimensions, got ", t.dim());
}

// Where the left operand's entries are: a[seg * seg_stride + row * row_stride + i * depth_stride] for
// depth index seg * seg_len + i.
struct Operand {
  const float* a;
  int64_t row_stride, depth_stride, segments, seg_stride, seg_len;
};

// For R rows: acc = sum over depth of a(row, d) * b[d * P : (d + 1) * P], then store(row, acc); the
// R x P accumulators stay in registers.
template <int R, int P, typename Store>
inline void rows_times_matrix(const Operand& op, int64_t row0, const float* __restrict b, Store&& store) {
  float acc[R][P] = {};
  for (int64_t s = 0; s < op.segments; ++s) {
    const float* a = op.a + s * op.seg_stride + row0 * op.row_stride;
    const float* __restrict bs = b + s * op.seg_len * P;
    for (int64_t i = 0; i < op.seg_len; ++i) {
      const float* __restrict brow = bs + i * P;
      for (int r = 0; r < R; ++r) {
        const float ar = a[r * op.row_stride + i * op.depth_stride];
#pragma omp simd
        for (int j = 0; j < P; ++j) acc[r][j] += ar * brow[j];
      }
    }
  }
  for (int r = 0; r < R; ++r) store(row0 + r, acc[r]);
}

template <int P, typename Store>
void matrix_product(const Operand& op, int64_t rows, const float* b, Store&& store) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) rows_times_matrix<4, P>(op, r, b, store);
  for (; r < rows; ++r) rows_times_matrix<1, P>(op, r, b, store);
}

template <typename F>
void dispatch_width(int64_t width, F&& f) {
  switch (width) {
    case 16: f(std::integral_constant<int, 16>{}); break;
    case 32: f(std::integral_constant<int, 32>{}); break;
    case 48: f(std::integral_constant<int, 48>{}); break;
    case 64: f(std::integral_constant<int, 64>{}); break;
    default: TORCH_CHECK(false, "graph product: graphs of more than 64 joints are not supported");
  }
}

inline void copy_row(const float* __restrict from, int64_t count, float* __restrict to) {
  for (int64_t i = 0; i < count; ++i) to[i] = from[i];
}

}  // namespace

// x (N, C, T, V), adjacency (K, V, W) -> z (N, C*K, T, W).
torch::Tensor graph_product_forward(const torch::Tensor& x, const torch::Tensor& adjacency) {
  check_input(x, "input", 4);
  check_input(adjacency, "adjacency", 3);
  const int64_t n = x.size(0), c = x.size(1), t = x.size(2), v = x.size(3);
  const int64_t k = adjacency.size(0), w = adjacency.size(2), wp = padded(w);
  TORCH_CHECK(adjacency.size(1) == v, "adjacency must be (K, V, W) with V = ", v);
  auto z = torch::empty({n, c * k, t, w}, x.options());
  auto a_pad = torch::zeros({k, v, wp}, x.options());
  a_pad.narrow(2, 0, w).copy_(adjacency);
  const float* xp = x.data_ptr<float>();
  const float* ap = a_pad.data_ptr<float>();
  float* zp = z.data_ptr<float>();
  dispatch_width(wp, [&](auto width) {
    constexpr int P = decltype(width)::value;
    at::parallel_for(0, n * c, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const Operand op{xp + p * t * v, v, 1, 1, 0, v};
        for (int64_t ik = 0; ik < k; ++ik) {
          float* out = zp + (p * k + ik) * t * w;  // plane (n, c*K + k) is contiguous
          matrix_product<P>(op, t, ap + ik * v * P,
                            [&](int64_t row, const float* values) { copy_row(values, w, out + row * w); });
        }
      }
    });
  });
  return z;
}

// grad_z (N, C*K, T, W) -> (grad_x (N, C, T, V) or undefined, grad_adjacency (K, V, W) or undefined).
std::vector<torch::Tensor> graph_product_backward(const torch::Tensor& grad_z, const torch::Tensor& x,
                                                  const torch::Tensor& adjacency, bool need_x,
                                                  bool need_adjacency) {
  check_input(x, "input", 4);
  check_input(adjacency, "adjacency", 3);
  auto gz = grad_z.contiguous();
  const int64_t n = x.size(0), c = x.size(1), t = x.size(2), v = x.size(3);
  const int64_t k = adjacency.size(0), w = adjacency.size(2), vp = padded(v), wp = padded(w);
  TORCH_CHECK(gz.dim() == 4 && gz.size(0) == n && gz.size(1) == c * k && gz.size(2) == t && gz.size(3) == w,
              "grad_output must be (N, C*K, T, W)");
  const float* gzp = gz.data_ptr<float>();
  const float* xp = x.data_ptr<float>();
  // A_k transposed, (K, W, VP): grad_x = sum_k grad_z_k A_k^T.
  auto at_pad = torch::zeros({k, w, vp}, x.options());
  at_pad.narrow(2, 0, v).copy_(adjacency.transpose(1, 2));
  const float* atp = at_pad.data_ptr<float>();

  torch::Tensor grad_x = need_x ? torch::empty_like(x) : torch::Tensor();
  float* gxp = need_x ? grad_x.data_ptr<float>() : nullptr;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(n * c, at::get_num_threads()));
  const int64_t a_size = k * v * wp;
  std::vector<double> partial(need_adjacency ? static_cast<size_t>(chunks * a_size) : 0, 0.0);

  at::parallel_for(0, chunks, 1, [&](int64_t q0, int64_t q1) {
    std::vector<float> gz_pad(need_adjacency ? static_cast<size_t>(t * wp) : 0, 0.f);
    for (int64_t q = q0; q < q1; ++q) {
      double* acc = need_adjacency ? partial.data() + q * a_size : nullptr;
      for (int64_t p = q * n * c / chunks; p < (q + 1) * n * c / chunks; ++p) {
        const float* gslab = gzp + p * k * t * w;  // the K planes of (n, c)
        const float* xslab = xp + p * t * v;
        if (need_x) {
          float* out = gxp + p * t * v;
          const Operand op{gslab, w, 1, k, t * w, w};
          dispatch_width(vp, [&](auto width) {
            constexpr int P = decltype(width)::value;
            matrix_product<P>(op, t, atp,
                              [&](int64_t row, const float* values) { copy_row(values, v, out + row * v); });
          });
        }
        if (need_adjacency) {
          // grad A_k (V x W) += x^T (V x T) grad_z_k (T x W); x^T read in place with strides.
          const Operand op{xslab, 1, v, 1, 0, t};
          for (int64_t ik = 0; ik < k; ++ik) {
            for (int64_t it = 0; it < t; ++it) copy_row(gslab + (ik * t + it) * w, w, gz_pad.data() + it * wp);
            double* dst = acc + ik * v * wp;
            dispatch_width(wp, [&](auto width) {
              constexpr int P = decltype(width)::value;
              matrix_product<P>(op, v, gz_pad.data(), [&](int64_t row, const float* values) {
                for (int j = 0; j < P; ++j) dst[row * P + j] += values[j];
              });
            });
          }
        }
      }
    }
  });

  torch::Tensor grad_adjacency;
  if (need_adjacency) {
    auto total = torch::zeros({k, v, wp}, x.options().dtype(torch::kFloat64));
    double* out = total.data_ptr<double>();
    for (int64_t q = 0; q < chunks; ++q)
      for (int64_t j = 0; j < a_size; ++j) out[j] += partial[q * a_size + j];
    grad_adjacency = total.narrow(2, 0, w).to(torch::kFloat32).contiguous();
  }
  return {grad_x, grad_adjacency};
}
