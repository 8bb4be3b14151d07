//! Causal grouped-query self-attention over a fused q|k|v buffer (RoPE already applied).
use crate::float::{gemm, Float, View};

/// B sequences of T tokens, NH query heads sharing KVH key/value heads of size HS.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    pub b: usize,
    pub t: usize,
    pub nh: usize,
    pub kvh: usize,
    pub hs: usize,
}

impl AttnShape {
    fn qkv_dim(&self) -> usize {
        (self.nh + 2 * self.kvh) * self.hs
    }
    /// Column offsets of query head h and of the key and value heads it reads.
    fn cols(&self, h: usize) -> (usize, usize, usize) {
        let kh = h / (self.nh / self.kvh);
        (
            h * self.hs,
            (self.nh + kh) * self.hs,
            (self.nh + self.kvh + kh) * self.hs,
        )
    }
}

/// qkv: (B T, QKV); out: (B T, NH HS); att: (B, NH, T, T) softmax probabilities (saved).
pub fn attention_forward<T: Float>(out: &mut [T], att: &mut [T], qkv: &[T], s: AttnShape) {
    let (t, hs, qd, od) = (s.t, s.hs, s.qkv_dim(), s.nh * s.hs);
    let scale = T::ONE / T::from_f64(hs as f64).sqrt();
    for b in 0..s.b {
        let seq = &qkv[b * t * qd..(b + 1) * t * qd];
        for h in 0..s.nh {
            let (qc, kc, vc) = s.cols(h);
            let p = &mut att[(b * s.nh + h) * t * t..(b * s.nh + h + 1) * t * t];
            // scores (T, T) = q (T, HS) @ k^T * scale
            let q = View {
                data: &seq[qc..],
                rs: qd,
                cs: 1,
            };
            let k = View {
                data: &seq[kc..],
                rs: qd,
                cs: 1,
            };
            gemm(t, hs, t, scale, q, k.t(), T::ZERO, p, t, 1);
            for (i, row) in p.chunks_exact_mut(t).enumerate() {
                let mut mx = row[0];
                for &v in &row[1..=i] {
                    if v > mx {
                        mx = v;
                    }
                }
                let mut sum = T::ZERO;
                for v in &mut row[..=i] {
                    *v = (*v - mx).fast_exp();
                    sum += *v;
                }
                let inv = T::ONE / sum;
                for v in &mut row[..=i] {
                    *v *= inv;
                }
                for v in &mut row[i + 1..] {
                    *v = T::ZERO;
                }
            }
            // out (T, HS) = att (T, T) @ v (T, HS)
            let v = View {
                data: &seq[vc..],
                rs: qd,
                cs: 1,
            };
            let o = &mut out[b * t * od + h * hs..];
            gemm(t, t, hs, T::ONE, View::rows(p, t), v, T::ZERO, o, od, 1);
        }
    }
}

/// dqkv: (B T, QKV), overwritten; scratch: (T, T); dout: (B T, NH HS).
pub fn attention_backward<T: Float>(
    dqkv: &mut [T],
    scratch: &mut [T],
    dout: &[T],
    att: &[T],
    qkv: &[T],
    s: AttnShape,
) {
    let (t, hs, qd, od) = (s.t, s.hs, s.qkv_dim(), s.nh * s.hs);
    let scale = T::ONE / T::from_f64(hs as f64).sqrt();
    dqkv[..s.b * t * qd].iter_mut().for_each(|v| *v = T::ZERO);
    for b in 0..s.b {
        let seq = &qkv[b * t * qd..(b + 1) * t * qd];
        let dseq = &mut dqkv[b * t * qd..(b + 1) * t * qd];
        for h in 0..s.nh {
            let (qc, kc, vc) = s.cols(h);
            let p = &att[(b * s.nh + h) * t * t..(b * s.nh + h + 1) * t * t];
            let dy = View {
                data: &dout[b * t * od + h * hs..],
                rs: od,
                cs: 1,
            };
            let v = View {
                data: &seq[vc..],
                rs: qd,
                cs: 1,
            };
            // dP (T, T) = dy (T, HS) @ v^T
            gemm(t, hs, t, T::ONE, dy, v.t(), T::ZERO, scratch, t, 1);
            // dv (T, HS) += P^T @ dy
            gemm(
                t,
                t,
                hs,
                T::ONE,
                View::rows(p, t).t(),
                dy,
                T::ONE,
                &mut dseq[vc..],
                qd,
                1,
            );
            // dS = P * (dP - rowsum(dP * P)) * scale, zero above the diagonal
            for (i, (ds, pr)) in scratch
                .chunks_exact_mut(t)
                .zip(p.chunks_exact(t))
                .enumerate()
            {
                let mut dot = T::ZERO;
                for j in 0..=i {
                    dot += ds[j] * pr[j];
                }
                for j in 0..=i {
                    ds[j] = pr[j] * (ds[j] - dot) * scale;
                }
                for v in &mut ds[i + 1..] {
                    *v = T::ZERO;
                }
            }
            let q = View {
                data: &seq[qc..],
                rs: qd,
                cs: 1,
            };
            let k = View {
                data: &seq[kc..],
                rs: qd,
                cs: 1,
            };
            // dq (T, HS) = dS @ k; dk (T, HS) += dS^T @ q
            gemm(
                t,
                t,
                hs,
                T::ONE,
                View::rows(scratch, t),
                k,
                T::ONE,
                &mut dseq[qc..],
                qd,
                1,
            );
            gemm(
                t,
                t,
                hs,
                T::ONE,
                View::rows(scratch, t).t(),
                q,
                T::ONE,
                &mut dseq[kc..],
                qd,
                1,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gradcheck::{check, dot, randn};
    use crate::rng::Rng;

    #[test]
    fn backward_matches_finite_differences() {
        let s = AttnShape {
            b: 2,
            t: 3,
            nh: 4,
            kvh: 2,
            hs: 2,
        };
        let n = s.b * s.t;
        let mut rng = Rng::new(5);
        let qkv = randn(&mut rng, n * s.qkv_dim(), 1.0);
        let r = randn(&mut rng, n * s.nh * s.hs, 1.0);
        let fwd = |qkv: &[f64]| {
            let mut out = vec![0.0; n * s.nh * s.hs];
            let mut att = vec![0.0; s.b * s.nh * s.t * s.t];
            attention_forward(&mut out, &mut att, qkv, s);
            (dot(&out, &r), att)
        };
        let (_, att) = fwd(&qkv);
        let mut dqkv = vec![f64::NAN; n * s.qkv_dim()];
        let mut scratch = vec![0.0; s.t * s.t];
        attention_backward(&mut dqkv, &mut scratch, &r, &att, &qkv, s);
        check("attention", &qkv, &dqkv, |x| fwd(x).0);
        // Causality: the first position attends only to itself.
        assert_eq!(att[0], 1.0);
    }
}
