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

/// Causal blocks: rows [r0, r1) only see keys [0, r1), so splitting T in two halves skips
/// the all-zero upper-right quarter of every T x T product.
fn row_blocks(t: usize) -> [(usize, usize); 2] {
    let h = t / 2;
    [(0, h), (h, t)]
}

/// Rows `r0..` of a (T, HS) head inside the fused buffer (row stride `stride`).
fn head<T>(seq: &[T], col: usize, r0: usize, stride: usize) -> View<'_, T> {
    View {
        data: &seq[r0 * stride + col..],
        rs: stride,
        cs: 1,
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
            // scores (T, T) = q (T, HS) @ k^T * scale, row block by row block
            for (r0, r1) in row_blocks(t) {
                let (q, k) = (head(seq, qc, r0, qd), head(seq, kc, 0, qd));
                gemm(
                    r1 - r0,
                    hs,
                    r1,
                    scale,
                    q,
                    k.t(),
                    T::ZERO,
                    &mut p[r0 * t..],
                    t,
                    1,
                );
            }
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
            for (r0, r1) in row_blocks(t) {
                let pr = View {
                    data: &p[r0 * t..],
                    rs: t,
                    cs: 1,
                };
                let o = &mut out[(b * t + r0) * od + h * hs..];
                gemm(
                    r1 - r0,
                    r1,
                    hs,
                    T::ONE,
                    pr,
                    head(seq, vc, 0, qd),
                    T::ZERO,
                    o,
                    od,
                    1,
                );
            }
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
        let dy_seq = &dout[b * t * od..(b + 1) * t * od];
        for h in 0..s.nh {
            let (qc, kc, vc) = s.cols(h);
            let p = &att[(b * s.nh + h) * t * t..(b * s.nh + h + 1) * t * t];
            for (r0, r1) in row_blocks(t) {
                // dP rows r0..r1 (keys 0..r1) = dy (rows r0..r1) @ v^T
                let (dy, v) = (head(dy_seq, h * hs, r0, od), head(seq, vc, 0, qd));
                gemm(
                    r1 - r0,
                    hs,
                    r1,
                    T::ONE,
                    dy,
                    v.t(),
                    T::ZERO,
                    &mut scratch[r0 * t..],
                    t,
                    1,
                );
                // dv (keys c0..c1) += P[c0.., c0..c1]^T @ dy[c0..]: rows above c0 are zero
                let (c0, c1) = (r0, r1);
                let pc = View {
                    data: &p[c0 * t + c0..],
                    rs: t,
                    cs: 1,
                };
                let dy = head(dy_seq, h * hs, c0, od);
                gemm(
                    c1 - c0,
                    t - c0,
                    hs,
                    T::ONE,
                    pc.t(),
                    dy,
                    T::ONE,
                    &mut dseq[c0 * qd + vc..],
                    qd,
                    1,
                );
            }
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
            for (r0, r1) in row_blocks(t) {
                // dq (rows r0..r1) = dS (rows r0..r1, keys 0..r1) @ k
                let ds = View {
                    data: &scratch[r0 * t..],
                    rs: t,
                    cs: 1,
                };
                gemm(
                    r1 - r0,
                    r1,
                    hs,
                    T::ONE,
                    ds,
                    head(seq, kc, 0, qd),
                    T::ONE,
                    &mut dseq[r0 * qd + qc..],
                    qd,
                    1,
                );
                // dk (keys c0..c1) += dS[c0.., c0..c1]^T @ q[c0..]
                let (c0, c1) = (r0, r1);
                let dsc = View {
                    data: &scratch[c0 * t + c0..],
                    rs: t,
                    cs: 1,
                };
                let q = head(seq, qc, c0, qd);
                gemm(
                    c1 - c0,
                    t - c0,
                    hs,
                    T::ONE,
                    dsc.t(),
                    q,
                    T::ONE,
                    &mut dseq[c0 * qd + kc..],
                    qd,
                    1,
                );
            }
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
            t: 5,
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
