// The graph convolution of an ST-GCN block (ST-GCN Eq. 10, graph first) on the CPU, float32, forward and
// backward:
//
//   z[n, c*K + k, t, w] = sum_v x[n, c, t, v] * A[k, v, w],     out[n] = W z[n]   (W: O x C*K)
//
// one sample at a time: z[n] (K times wider than x[n]) is built in a per-thread buffer with
// register-blocked loops over matrices padded to whole 512-bit vectors, multiplied by W with ATen's GEMM
// while it is in cache, and never stored; the backward builds it again for the weight gradient.
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


// Padded copies of the graph: A_k as (K, V, WP) for the forward, A_k^T as (K, W, VP) for the backward.
struct Graph {
  torch::Tensor forward, transposed;
  int64_t k, v, w, vp, wp;
};

Graph pad_graph(const torch::Tensor& adjacency) {
  Graph g;
  g.k = adjacency.size(0), g.v = adjacency.size(1), g.w = adjacency.size(2);
  g.vp = padded(g.v), g.wp = padded(g.w);
  TORCH_CHECK(g.vp <= 64 && g.wp <= 64, "graph product: graphs of more than 64 joints are not supported");
  g.forward = torch::zeros({g.k, g.v, g.wp}, adjacency.options());
  g.forward.narrow(2, 0, g.w).copy_(adjacency);
  g.transposed = torch::zeros({g.k, g.w, g.vp}, adjacency.options());
  g.transposed.narrow(2, 0, g.v).copy_(adjacency.transpose(1, 2));
  return g;
}

// One (n, c) slab x_s (T x V) -> its K planes out[k] (T x W), planes `plane_stride` floats apart.
void slab_forward(const Graph& g, const float* xs, int64_t t, float* out, int64_t plane_stride) {
  const float* ap = g.forward.data_ptr<float>();
  dispatch_width(g.wp, [&](auto width) {
    constexpr int P = decltype(width)::value;
    const Operand op{xs, g.v, 1, 1, 0, g.v};
    for (int64_t ik = 0; ik < g.k; ++ik) {
      float* plane = out + ik * plane_stride;
      matrix_product<P>(op, t, ap + ik * g.v * P,
                        [&](int64_t row, const float* values) { copy_row(values, g.w, plane + row * g.w); });
    }
  });
}

// One slab's gradients from its K gradient planes gs (T x W each, contiguous): grad_x slab (T x V) if gx,
// and grad A_k (V x W, row stride WP) added to acc if acc. gz_pad: scratch of T * WP floats.
void slab_backward(const Graph& g, const float* gs, const float* xs, int64_t t, float* gx, double* acc,
                   float* gz_pad) {
  if (gx) {
    const float* atp = g.transposed.data_ptr<float>();
    const Operand op{gs, g.w, 1, g.k, t * g.w, g.w};
    dispatch_width(g.vp, [&](auto width) {
      constexpr int P = decltype(width)::value;
      matrix_product<P>(op, t, atp, [&](int64_t row, const float* values) { copy_row(values, g.v, gx + row * g.v); });
    });
  }
  if (acc) {
    // grad A_k (V x W) += x^T (V x T) grad_z_k (T x W); x^T read in place with strides.
    const Operand op{xs, 1, g.v, 1, 0, t};
    for (int64_t ik = 0; ik < g.k; ++ik) {
      for (int64_t it = 0; it < t; ++it) copy_row(gs + (ik * t + it) * g.w, g.w, gz_pad + it * g.wp);
      double* dst = acc + ik * g.v * g.wp;
      dispatch_width(g.wp, [&](auto width) {
        constexpr int P = decltype(width)::value;
        matrix_product<P>(op, g.v, gz_pad, [&](int64_t row, const float* values) {
          for (int j = 0; j < P; ++j) dst[row * P + j] += values[j];
        });
      });
    }
  }
}

torch::Tensor sum_partials(const std::vector<double>& partial, int64_t chunks, const Graph& g,
                           const torch::TensorOptions& options) {
  const int64_t size = g.k * g.v * g.wp;
  auto total = torch::zeros({g.k, g.v, g.wp}, options.dtype(torch::kFloat64));
  double* out = total.data_ptr<double>();
  for (int64_t q = 0; q < chunks; ++q)
    for (int64_t j = 0; j < size; ++j) out[j] += partial[q * size + j];
  return total.narrow(2, 0, g.w).to(torch::kFloat32).contiguous();
}

int64_t thread_chunks(int64_t items) { return std::max<int64_t>(1, std::min<int64_t>(items, at::get_num_threads())); }

}  // namespace

// The graph product followed by the 1x1 convolution (weight (O, C*K)), one sample at a time so that the
// K-times-wider product never leaves the cache: out (N, O, T, W).
torch::Tensor graph_conv_forward(const torch::Tensor& x, const torch::Tensor& adjacency,
                                 const torch::Tensor& weight_in) {
  // Detached: the products run on worker threads, where autograd is on by default.
  const torch::Tensor weight = weight_in.detach();
  check_input(x, "input", 4);
  check_input(adjacency, "adjacency", 3);
  check_input(weight, "weight", 2);
  const int64_t n = x.size(0), c = x.size(1), t = x.size(2), v = x.size(3);
  TORCH_CHECK(adjacency.size(1) == v, "adjacency must be (K, V, W) with V = ", v);
  const Graph g = pad_graph(adjacency);
  const int64_t o = weight.size(0), ck = c * g.k, tw = t * g.w;
  TORCH_CHECK(weight.size(1) == ck, "weight must be (O, C*K) with C*K = ", ck);
  auto out = torch::empty({n, o, t, g.w}, x.options());
  const float* xp = x.data_ptr<float>();
  at::parallel_for(0, n, 1, [&](int64_t n0, int64_t n1) {
    auto z = torch::empty({ck, tw}, x.options());
    float* zp = z.data_ptr<float>();
    for (int64_t in = n0; in < n1; ++in) {
      for (int64_t ic = 0; ic < c; ++ic) slab_forward(g, xp + (in * c + ic) * t * v, t, zp + ic * g.k * tw, tw);
      auto dst = out.select(0, in).view({o, tw});
      at::mm_out(dst, weight, z);
    }
  });
  return out;
}

// grad_out (N, O, T, W) -> (grad_x or undefined, grad_adjacency or undefined, grad_weight or undefined).
std::vector<torch::Tensor> graph_conv_backward(const torch::Tensor& grad_out, const torch::Tensor& x,
                                               const torch::Tensor& adjacency, const torch::Tensor& weight_in,
                                               bool need_x, bool need_adjacency, bool need_weight) {
  const torch::Tensor weight = weight_in.detach();  // see graph_conv_forward
  check_input(x, "input", 4);
  check_input(adjacency, "adjacency", 3);
  check_input(weight, "weight", 2);
  auto go = grad_out.detach().contiguous();
  const int64_t n = x.size(0), c = x.size(1), t = x.size(2), v = x.size(3);
  const Graph g = pad_graph(adjacency);
  const int64_t o = weight.size(0), ck = c * g.k, tw = t * g.w;
  TORCH_CHECK(go.dim() == 4 && go.size(0) == n && go.size(1) == o && go.size(2) == t && go.size(3) == g.w,
              "grad_output must be (N, O, T, W)");
  const float* xp = x.data_ptr<float>();
  torch::Tensor grad_x = need_x ? torch::empty_like(x) : torch::Tensor();
  float* gxp = need_x ? grad_x.data_ptr<float>() : nullptr;
  const int64_t chunks = thread_chunks(n), a_size = g.k * g.v * g.wp;
  std::vector<double> partial(need_adjacency ? static_cast<size_t>(chunks * a_size) : 0, 0.0);
  std::vector<torch::Tensor> weight_partial(static_cast<size_t>(chunks));
  auto weight_t = weight.t().contiguous();  // (C*K, O)
  at::parallel_for(0, chunks, 1, [&](int64_t q0, int64_t q1) {
    auto z = torch::empty({ck, tw}, x.options());
    auto gz = torch::empty({ck, tw}, x.options());
    float* zp = z.data_ptr<float>();
    const float* gzp = gz.data_ptr<float>();
    std::vector<float> gz_pad(static_cast<size_t>(t * g.wp), 0.f);
    for (int64_t q = q0; q < q1; ++q) {
      torch::Tensor gw;
      if (need_weight) gw = torch::zeros({o, ck}, x.options());
      for (int64_t in = q * n / chunks; in < (q + 1) * n / chunks; ++in) {
        auto gon = go.select(0, in).view({o, tw});
        if (need_weight) {
          for (int64_t ic = 0; ic < c; ++ic) slab_forward(g, xp + (in * c + ic) * t * v, t, zp + ic * g.k * tw, tw);
          gw.addmm_(gon, z.t());  // grad W += grad_out_n z_n^T
        }
        if (need_x || need_adjacency) {
          at::mm_out(gz, weight_t, gon);  // grad z_n = W^T grad_out_n
          for (int64_t ic = 0; ic < c; ++ic)
            slab_backward(g, gzp + ic * g.k * tw, xp + (in * c + ic) * t * v, t,
                          need_x ? gxp + (in * c + ic) * t * v : nullptr,
                          need_adjacency ? partial.data() + q * a_size : nullptr, gz_pad.data());
        }
      }
      weight_partial[q] = gw;
    }
  });
  torch::Tensor grad_adjacency = need_adjacency ? sum_partials(partial, chunks, g, x.options()) : torch::Tensor();
  torch::Tensor grad_weight;
  if (need_weight) {
    grad_weight = weight_partial[0];
    for (int64_t q = 1; q < chunks; ++q) grad_weight = grad_weight + weight_partial[q];
  }
  return {grad_x, grad_adjacency, grad_weight};
}
