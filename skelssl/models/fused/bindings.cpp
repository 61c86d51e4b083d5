// Python bindings of the fused CPU kernels (fused_bn.cpp, fused_graph.cpp).
#include <torch/extension.h>

#include <vector>

std::vector<torch::Tensor> bn_act_forward(const torch::Tensor& x, const torch::Tensor& weight,
                                          const torch::Tensor& bias, double eps,
                                          const c10::optional<torch::Tensor>& offset, double dropout_p,
                                          int64_t seed, const c10::optional<torch::Tensor>& residual,
                                          bool relu);
std::vector<torch::Tensor> bn_act_backward(const torch::Tensor& grad_y, const torch::Tensor& x,
                                           const torch::Tensor& y, const torch::Tensor& mean,
                                           const torch::Tensor& invstd, const torch::Tensor& weight,
                                           const c10::optional<torch::Tensor>& offset, double dropout_p,
                                           int64_t seed, bool relu, bool residual_grad, bool offset_grad);
torch::Tensor graph_conv_forward(const torch::Tensor& x, const torch::Tensor& adjacency,
                                 const torch::Tensor& weight);
std::vector<torch::Tensor> graph_conv_backward(const torch::Tensor& grad_out, const torch::Tensor& x,
                                               const torch::Tensor& adjacency, const torch::Tensor& weight,
                                               bool need_x, bool need_adjacency, bool need_weight);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("bn_act_forward", &bn_act_forward, "BatchNorm (training) + offset + dropout + residual + ReLU");
  m.def("bn_act_backward", &bn_act_backward, "gradients of bn_act_forward");
  m.def("graph_conv_forward", &graph_conv_forward, "graph product then 1x1 convolution, per sample in cache");
  m.def("graph_conv_backward", &graph_conv_backward, "gradients of graph_conv_forward");
}
