//! Compute kernels. `scalar` is the reference every optimized path is tested against.

pub mod scalar;

pub use scalar::{
    add_in_place, attention_head, dequantize_row, gelu_tanh, layernorm, matmul, rmsnorm, rope,
    softmax, swiglu,
};
