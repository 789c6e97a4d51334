// NN: Float32 tensors on OpenBLAS (issue 5).
