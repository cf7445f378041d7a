import XCTest
import PRMTestSupport
@testable import PRMCore

/// Every kernel's backward pass against central finite differences, on odd shapes; the kernels
/// built on sgemm on every backend.
final class KernelGradientTests: XCTestCase {
    func testLinearBothLayouts() {
        TestSupport.eachBackend { backend in
            var g = GradientCheck()
            for layout in [WeightLayout.outIn, .inOut] {
                let (N, C, OC) = (7, 13, 5)
                let x = g.tensor([N, C]), w = g.tensor([OC, C], scale: 0.5), b = g.tensor([OC]), up = g.tensor([N, OC])
                let out = Tensor(shape: [N, OC])
                func loss() -> Double {
                    Linear.forward(out: out.data, inp: x.data, weight: w.data, bias: b.data, N: N, C: C, OC: OC, layout: layout)
                    return weightedSum(out, up)
                }
                _ = loss()
                // Forward against a naive product.
                for n in 0..<N { for o in 0..<OC {
                    var s = b[o]
                    for c in 0..<C { s += x[n * C + c] * (layout == .outIn ? w[o * C + c] : w[c * OC + o]) }
                    XCTAssertEqual(out[n * OC + o], s, accuracy: 1e-4, "\(backend)")
                } }
                let dx = Tensor(shape: x.shape), dw = Tensor(shape: w.shape), db = Tensor(shape: b.shape)
                Linear.backward(dinp: dx.data, dweight: dw.data, dbias: db.data, dout: up.data, inp: x.data,
                                weight: w.data, N: N, C: C, OC: OC, layout: layout)
                g.check("\(backend) linear \(layout) dinp", input: x, analytic: dx, loss: loss)
                g.check("\(backend) linear \(layout) dweight", input: w, analytic: dw, loss: loss)
                g.check("\(backend) linear \(layout) dbias", input: b, analytic: db, loss: loss)
            }
        }
    }

    func testBatchedMatmulAllTransposes() {
        TestSupport.eachBackend { backend in
            var g = GradientCheck()
            let (B, M, N, K) = (3, 5, 4, 7)
            for transA in [false, true] {
                for transB in [false, true] {
                    let a = g.tensor([B, M * K]), b = g.tensor([B, K * N]), up = g.tensor([B, M * N])
                    let out = Tensor(shape: [B, M * N])
                    func loss() -> Double {
                        BatchedMatmul.forward(out: out.data, a: a.data, b: b.data, batch: B, M: M, N: N, K: K, transA: transA, transB: transB)
                        return weightedSum(out, up)
                    }
                    _ = loss()
                    for i in 0..<B { for m in 0..<M { for n in 0..<N {
                        var s: Float = 0
                        for k in 0..<K {
                            let av = transA ? a[i * M * K + k * M + m] : a[i * M * K + m * K + k]
                            let bv = transB ? b[i * K * N + n * K + k] : b[i * K * N + k * N + n]
                            s += av * bv
                        }
                        XCTAssertEqual(out[i * M * N + m * N + n], s, accuracy: 1e-4, "\(backend)")
                    } } }
                    let da = Tensor(shape: a.shape), db = Tensor(shape: b.shape)
                    BatchedMatmul.backward(da: da.data, db: db.data, dout: up.data, a: a.data, b: b.data,
                                           batch: B, M: M, N: N, K: K, transA: transA, transB: transB)
                    g.check("\(backend) bmm \(transA)\(transB) da", input: a, analytic: da, loss: loss)
                    g.check("\(backend) bmm \(transA)\(transB) db", input: b, analytic: db, loss: loss)
                }
            }
        }
    }

    func testEmbeddingWithRepeatedIds() {
        var g = GradientCheck()
        let (V, C) = (6, 5)
        let ids: [Int32] = [0, 3, 3, 5, 1, 3]
        let table = g.tensor([V, C]), up = g.tensor([ids.count, C]), out = Tensor(shape: [ids.count, C])
        func loss() -> Double {
            ids.withUnsafeBufferPointer { Embedding.forward(out: out.data, ids: $0.baseAddress!, table: table.data, N: ids.count, C: C) }
            return weightedSum(out, up)
        }
        _ = loss()
        XCTAssertEqual(out[1 * C + 2], table[3 * C + 2])
        let dt = Tensor(shape: table.shape)
        ids.withUnsafeBufferPointer { Embedding.backward(dtable: dt.data, dout: up.data, ids: $0.baseAddress!, N: ids.count, C: C) }
        g.check("embedding dtable", input: table, analytic: dt, loss: loss)
    }

    func testResidual() {
        var g = GradientCheck()
        let a = g.tensor([11]), b = g.tensor([11]), up = g.tensor([11]), out = Tensor(shape: [11])
        func loss() -> Double { Residual.forward(out: out.data, a: a.data, b: b.data, count: 11); return weightedSum(out, up) }
        _ = loss()
        let da = Tensor(shape: [11]), db = Tensor(shape: [11])
        Residual.backward(da: da.data, db: db.data, dout: up.data, count: 11)
        g.check("residual da", input: a, analytic: da, loss: loss)
        g.check("residual db", input: b, analytic: db, loss: loss)
    }

    func testLayerNorm() {
        var g = GradientCheck()
        let (N, C) = (5, 19)
        let x = g.tensor([N, C], scale: 2), w = g.tensor([C]), b = g.tensor([C]), up = g.tensor([N, C])
        let out = Tensor(shape: [N, C]), mean = Tensor(shape: [N]), rstd = Tensor(shape: [N])
        func loss() -> Double {
            LayerNorm.forward(out: out.data, mean: mean.data, rstd: rstd.data, inp: x.data, weight: w.data, bias: b.data, N: N, C: C, eps: 1e-5)
            return weightedSum(out, up)
        }
        _ = loss()
        let dx = Tensor(shape: x.shape), dw = Tensor(shape: w.shape), db = Tensor(shape: b.shape)
        LayerNorm.backward(dinp: dx.data, dweight: dw.data, dbias: db.data, dout: up.data, inp: x.data, weight: w.data,
                           mean: mean.data, rstd: rstd.data, N: N, C: C)
        g.check("layernorm dinp", input: x, analytic: dx, step: 3e-3, loss: loss)
        g.check("layernorm dweight", input: w, analytic: dw, loss: loss)
        g.check("layernorm dbias", input: b, analytic: db, loss: loss)
    }

    func testGELUBothForms() {
        var g = GradientCheck()
        for form in [GELU.Form.erf, .tanh] {
            let n = 37  // a SIMD body plus a scalar tail
            let x = g.tensor([n], scale: 2.5), up = g.tensor([n]), out = Tensor(shape: [n])
            func loss() -> Double { GELU.forward(out: out.data, inp: x.data, count: n, form: form); return weightedSum(out, up) }
            _ = loss()
            for i in 0..<n {
                let v = Double(x[i])
                let exact = form == .erf ? 0.5 * v * (1 + Foundation.erf(v / 2.0.squareRoot()))
                    : 0.5 * v * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (v + 0.044715 * v * v * v)))
                XCTAssertEqual(Double(out[i]), exact, accuracy: 1e-5, "gelu \(form)(\(v))")
            }
            let dx = Tensor(shape: [n])
            GELU.backward(dinp: dx.data, dout: up.data, inp: x.data, count: n, form: form)
            g.check("gelu \(form)", input: x, analytic: dx, step: 1e-3, loss: loss)
        }
    }

    func testVectorExpMatchesLibm() {
        for x in stride(from: Float(-80), through: 80, by: 0.37) {
            let v = VectorMath.exp(x)
            XCTAssertEqual(v, Foundation.exp(x), accuracy: Foundation.exp(x) * 1e-6, "exp(\(x))")
        }
    }

    func testSoftmax() {
        var g = GradientCheck()
        let (N, V) = (4, 21)
        let x = g.tensor([N, V], scale: 3), up = g.tensor([N, V]), out = Tensor(shape: [N, V])
        func loss() -> Double { Softmax.forward(out: out.data, inp: x.data, N: N, V: V); return weightedSum(out, up) }
        _ = loss()
        for n in 0..<N { XCTAssertEqual((0..<V).reduce(Float(0)) { $0 + out[n * V + $1] }, 1, accuracy: 1e-5) }
        let dx = Tensor(shape: x.shape)
        Softmax.backward(dinp: dx.data, dout: up.data, out: out.data, N: N, V: V)
        g.check("softmax", input: x, analytic: dx, step: 3e-3, loss: loss)
    }

    func testAttentionRaggedCausalAndBidirectional() {
        TestSupport.eachBackend { backend in
            var g = GradientCheck()
            let (NH, C) = (3, 12)
            let batch = PackedBatch(lengths: [5, 1, 8, 3])
            for causal in [false, true] {
                let qkv = g.tensor([batch.tokens, 3 * C]), up = g.tensor([batch.tokens, C])
                let out = Tensor(shape: [batch.tokens, C]), probs = Tensor(shape: [batch.probsCount(heads: NH)])
                func loss() -> Double {
                    Attention.forward(out: out.data, probs: probs.data, qkv: qkv.data, batch: batch, NH: NH, C: C, causal: causal)
                    return weightedSum(out, up)
                }
                _ = loss()
                assertMatchesNaiveAttention(out: out, qkv: qkv, batch: batch, NH: NH, C: C, causal: causal)
                let dqkv = Tensor(shape: qkv.shape)
                Attention.backward(dqkv: dqkv.data, dout: up.data, qkv: qkv.data, probs: probs.data, batch: batch, NH: NH, C: C)
                g.check("\(backend) attention causal=\(causal)", input: qkv, analytic: dqkv, step: 3e-3, samples: 96, loss: loss)
            }
        }
    }

    /// Attention computed one query at a time with no BLAS, as an independent forward reference.
    private func assertMatchesNaiveAttention(out: Tensor, qkv: Tensor, batch: PackedBatch, NH: Int, C: Int, causal: Bool) {
        let hs = C / NH
        for b in 0..<batch.count {
            let s = batch.starts[b], T = batch.lengths[b]
            for h in 0..<NH { for i in 0..<T {
                let keys = causal ? i + 1 : T
                var scores = [Double](repeating: 0, count: keys)
                for j in 0..<keys {
                    var dot = 0.0
                    for d in 0..<hs { dot += Double(qkv[(s + i) * 3 * C + h * hs + d]) * Double(qkv[(s + j) * 3 * C + C + h * hs + d]) }
                    scores[j] = dot / Double(hs).squareRoot()
                }
                let m = scores.max() ?? 0
                let e = scores.map { Foundation.exp($0 - m) }
                let z = e.reduce(0, +)
                for d in 0..<hs {
                    var v = 0.0
                    for j in 0..<keys { v += e[j] / z * Double(qkv[(s + j) * 3 * C + 2 * C + h * hs + d]) }
                    XCTAssertEqual(Double(out[(s + i) * C + h * hs + d]), v, accuracy: 1e-4)
                }
            } }
        }
    }

    func testPoolingAndNormalisation() {
        var g = GradientCheck()
        let C = 6
        let batch = PackedBatch(lengths: [3, 1, 4])
        let x = g.tensor([batch.tokens, C]), up = g.tensor([batch.count, C]), pooled = Tensor(shape: [batch.count, C])
        // Whole sequences, then parts of them (a reply after its prompt; an empty span pools to zero).
        for spans in [batch.sequenceSpans, [1..<3, 3..<3, 5..<8]] {
            func meanLoss() -> Double { MeanPool.forward(out: pooled.data, inp: x.data, spans: spans, C: C); return weightedSum(pooled, up) }
            _ = meanLoss()
            let dx = Tensor(shape: x.shape)
            MeanPool.backward(dinp: dx.data, dout: up.data, spans: spans, C: C)
            g.check("mean pool over \(spans)", input: x, analytic: dx, loss: meanLoss)
        }

        let rows = (0..<batch.count).map(batch.lastRow)
        func gatherLoss() -> Double { RowGather.forward(out: pooled.data, inp: x.data, rows: rows, C: C); return weightedSum(pooled, up) }
        _ = gatherLoss()
        let dg = Tensor(shape: x.shape)
        RowGather.backward(dinp: dg.data, dout: up.data, rows: rows, C: C)
        g.check("row gather", input: x, analytic: dg, loss: gatherLoss)

        let v = g.tensor([3, C]), norms = Tensor(shape: [3]), normalised = Tensor(shape: [3, C]), w = g.tensor([3, C])
        func normLoss() -> Double { L2Normalize.forward(out: normalised.data, norms: norms.data, inp: v.data, B: 3, C: C); return weightedSum(normalised, w) }
        _ = normLoss()
        let dv = Tensor(shape: v.shape)
        L2Normalize.backward(dinp: dv.data, dout: w.data, out: normalised.data, norms: norms.data, B: 3, C: C)
        g.check("l2 normalize", input: v, analytic: dv, step: 3e-3, loss: normLoss)
    }

    /// Spans that cover part of a sequence, a whole one, and none (an empty reply counts 0).
    func testLogCountPool() {
        var g = GradientCheck()
        let (C, K) = (6, 3)
        let batch = PackedBatch(lengths: [5, 2, 4])
        let spans = [2..<5, 5..<7, 11..<11]
        let N = batch.tokens
        let x = g.tensor([N, C]), w = g.tensor([K, C], scale: 0.5), a = g.tensor([K]), up = g.tensor([spans.count, K])
        let out = Tensor(shape: [spans.count, K]), z = Tensor(shape: [N, K]), sums = Tensor(shape: [spans.count, K])
        func loss() -> Double {
            LogCountPool.forward(out: out.data, z: z.data, sums: sums.data, inp: x.data, weight: w.data, bias: a.data,
                                 spans: spans, N: N, C: C, K: K)
            return weightedSum(out, up)
        }
        _ = loss()
        // The definition, in double precision, for the first span's first detector.
        var total = 0.0
        for t in 2..<5 {
            var dot = Double(a[0])
            for c in 0..<C { dot += Double(x[t * C + c]) * Double(w[c]) }
            total += Foundation.log(1 + Foundation.exp(dot))
        }
        XCTAssertEqual(Double(out[0]), Foundation.log(1 + total), accuracy: 1e-5)
        XCTAssertEqual(out[2 * K], 0, "an empty span counts nothing")
        let dx = Tensor(shape: x.shape), dw = Tensor(shape: w.shape), da = Tensor(shape: a.shape), dz = Tensor(shape: [N, K])
        LogCountPool.backward(dinp: dx.data, dweight: dw.data, dbias: da.data, dz: dz.data, dout: up.data, z: z.data, sums: sums.data,
                              inp: x.data, weight: w.data, spans: spans, N: N, C: C, K: K)
        g.check("log count pool d inp", input: x, analytic: dx, step: 3e-3, loss: loss)
        g.check("log count pool d weight", input: w, analytic: dw, step: 3e-3, loss: loss)
        g.check("log count pool d bias", input: a, analytic: da, step: 3e-3, loss: loss)
        for row in [0, 1, 7, 8, 9, 10] {
            for c in 0..<C { XCTAssertEqual(dx[row * C + c], 0, "row \(row) is in no span") }
        }
    }

    func testCrossEntropy() {
        var g = GradientCheck()
        let (N, V) = (5, 9)
        let targets: [Int32] = [0, 8, 3, 3, 5]
        let logits = g.tensor([N, V], scale: 2), probs = Tensor(shape: [N, V]), losses = Tensor(shape: [N]), up = g.tensor([N])
        func loss() -> Double {
            targets.withUnsafeBufferPointer { CrossEntropy.forward(losses: losses.data, probs: probs.data, logits: logits.data, targets: $0.baseAddress!, N: N, V: V) }
            return weightedSum(losses, up)
        }
        _ = loss()
        let dl = Tensor(shape: logits.shape)
        targets.withUnsafeBufferPointer { CrossEntropy.backward(dlogits: dl.data, dlosses: up.data, probs: probs.data, targets: $0.baseAddress!, N: N, V: V) }
        g.check("cross entropy", input: logits, analytic: dl, step: 3e-3, loss: loss)
    }

    func testPairLossIncludingLargeMargins() {
        var g = GradientCheck()
        let B = 6
        let chosen = g.tensor([B], scale: 3), rejected = g.tensor([B], scale: 3), up = g.tensor([B]), losses = Tensor(shape: [B])
        func loss() -> Double { PairLoss.forward(losses: losses.data, chosen: chosen.data, rejected: rejected.data, B: B); return weightedSum(losses, up) }
        _ = loss()
        let dc = Tensor(shape: [B]), dr = Tensor(shape: [B])
        PairLoss.backward(dchosen: dc.data, drejected: dr.data, dlosses: up.data, chosen: chosen.data, rejected: rejected.data, B: B)
        g.check("pair loss chosen", input: chosen, analytic: dc, step: 1e-3, loss: loss)
        g.check("pair loss rejected", input: rejected, analytic: dr, step: 1e-3, loss: loss)
        // −log σ(±200) neither overflows nor loses the linear tail.
        XCTAssertEqual(Logistic.softplus(-200), 0, accuracy: 1e-30)
        XCTAssertEqual(Logistic.softplus(200), 200, accuracy: 1e-3)
    }

    func testDropoutUsesOneMaskForwardAndBackward() {
        var g = GradientCheck()
        let n = 40
        let x = g.tensor([n]), up = g.tensor([n]), out = Tensor(shape: [n]), mask = Tensor(shape: [n])
        func loss() -> Double {
            var rng = RandomSource(seed: 7)  // the same mask on every evaluation
            Dropout.forward(out: out.data, mask: mask.data, inp: x.data, count: n, p: 0.25, rng: &rng)
            return weightedSum(out, up)
        }
        _ = loss()
        let dropped = (0..<n).filter { mask[$0] == 0 }.count
        XCTAssertTrue(dropped > 0 && dropped < n, "dropout dropped \(dropped) of \(n)")
        XCTAssertEqual(mask.array.first { $0 != 0 } ?? 0, 1 / 0.75, accuracy: 1e-6)
        let dx = Tensor(shape: [n])
        Dropout.backward(dinp: dx.data, dout: up.data, mask: mask.data, count: n)
        g.check("dropout", input: x, analytic: dx, loss: loss)
    }

    func testParallelPathsMatchSerialOnLargeInputs() {
        // Large enough that LayerNorm/GELU split rows across cores; results must equal a per-row recomputation.
        var g = GradientCheck()
        let (N, C) = (300, 384)
        let x = g.tensor([N, C]), w = g.tensor([C]), b = g.tensor([C])
        let out = Tensor(shape: [N, C]), mean = Tensor(shape: [N]), rstd = Tensor(shape: [N])
        LayerNorm.forward(out: out.data, mean: mean.data, rstd: rstd.data, inp: x.data, weight: w.data, bias: b.data, N: N, C: C, eps: 1e-5)
        let single = Tensor(shape: [1, C]), m1 = Tensor(shape: [1]), r1 = Tensor(shape: [1])
        for n in stride(from: 0, to: N, by: 37) {
            LayerNorm.forward(out: single.data, mean: m1.data, rstd: r1.data, inp: x.data + n * C, weight: w.data, bias: b.data, N: 1, C: C, eps: 1e-5)
            for c in 0..<C { XCTAssertEqual(out[n * C + c], single[c]) }
        }
    }

    /// LayerNorm's backward on a shape that splits rows across the cores (per-chunk partial sums
    /// of dweight and dbias): equal to the serial path (one row at a time) and to finite differences.
    func testLayerNormBackwardParallelReduction() {
        var g = GradientCheck()
        let (N, C) = (300, 64)
        XCTAssertGreaterThan(Parallel.chunkCount(N, costPerItem: 6 * C), 1, "the shape must take the parallel path")
        let x = g.tensor([N, C], scale: 2), w = g.tensor([C]), b = g.tensor([C]), up = g.tensor([N, C])
        let out = Tensor(shape: [N, C]), mean = Tensor(shape: [N]), rstd = Tensor(shape: [N])
        func loss() -> Double {
            LayerNorm.forward(out: out.data, mean: mean.data, rstd: rstd.data, inp: x.data, weight: w.data, bias: b.data, N: N, C: C, eps: 1e-5)
            return weightedSum(out, up)
        }
        _ = loss()
        let dx = Tensor(shape: x.shape), dw = Tensor(shape: w.shape), db = Tensor(shape: b.shape)
        LayerNorm.backward(dinp: dx.data, dweight: dw.data, dbias: db.data, dout: up.data, inp: x.data, weight: w.data,
                           mean: mean.data, rstd: rstd.data, N: N, C: C)
        // Serial: each row alone (one chunk), accumulated in Double.
        let dx1 = Tensor(shape: [1, C]), dw1 = Tensor(shape: [C]), db1 = Tensor(shape: [C])
        var dwSerial = [Double](repeating: 0, count: C), dbSerial = [Double](repeating: 0, count: C)
        for n in 0..<N {
            dx1.zero(); dw1.zero(); db1.zero()
            LayerNorm.backward(dinp: dx1.data, dweight: dw1.data, dbias: db1.data, dout: up.data + n * C, inp: x.data + n * C,
                               weight: w.data, mean: mean.data + n, rstd: rstd.data + n, N: 1, C: C)
            for c in 0..<C {
                XCTAssertEqual(dx[n * C + c], dx1[c], accuracy: 1e-6 * max(1, abs(dx1[c])))
                dwSerial[c] += Double(dw1[c])
                dbSerial[c] += Double(db1[c])
            }
        }
        for c in 0..<C {
            XCTAssertEqual(Double(dw[c]), dwSerial[c], accuracy: 1e-4 * max(1, abs(dwSerial[c])), "dweight[\(c)]")
            XCTAssertEqual(Double(db[c]), dbSerial[c], accuracy: 1e-4 * max(1, abs(dbSerial[c])), "dbias[\(c)]")
        }
        g.check("layernorm (parallel) dinp", input: x, analytic: dx, step: 3e-3, samples: 64, loss: loss)
        g.check("layernorm (parallel) dweight", input: w, analytic: dw, samples: 64, loss: loss)
        g.check("layernorm (parallel) dbias", input: b, analytic: db, samples: 64, loss: loss)
    }

    /// ColumnSum (Linear's bias gradient) on a shape split across the cores: equal to a serial
    /// Double sum and, through Linear, to finite differences of the bias.
    func testColumnSumParallelReduction() {
        var g = GradientCheck()
        let (N, C, OC) = (700, 16, 64)
        XCTAssertGreaterThan(Parallel.chunkCount(N, costPerItem: OC), 1, "the shape must take the parallel path")
        let x = g.tensor([N, C]), wt = g.tensor([OC, C], scale: 0.3), bias = g.tensor([OC]), up = g.tensor([N, OC])
        let sums = Tensor(shape: [OC])
        ColumnSum.accumulate(into: sums.data, up.data, rows: N, columns: OC)
        for c in 0..<OC {
            let serial = (0..<N).reduce(0.0) { $0 + Double(up[$1 * OC + c]) }
            XCTAssertEqual(Double(sums[c]), serial, accuracy: 1e-4 * max(1, abs(serial)), "column \(c)")
        }
        let out = Tensor(shape: [N, OC])
        func loss() -> Double {
            Linear.forward(out: out.data, inp: x.data, weight: wt.data, bias: bias.data, N: N, C: C, OC: OC, layout: .outIn)
            return weightedSum(out, up)
        }
        _ = loss()
        let dx = Tensor(shape: x.shape), dw = Tensor(shape: wt.shape), db = Tensor(shape: bias.shape)
        Linear.backward(dinp: dx.data, dweight: dw.data, dbias: db.data, dout: up.data, inp: x.data, weight: wt.data,
                        N: N, C: C, OC: OC, layout: .outIn)
        g.check("linear (parallel) dbias", input: bias, analytic: db, samples: 64, loss: loss)
        g.check("linear (parallel) dweight", input: wt, analytic: dw, samples: 64, loss: loss)
    }
}
