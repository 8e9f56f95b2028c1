// Runs an exported unroll model in onnxruntime and compares it with unroll's own forward
// pass (tests/test_onnx.cpp writes both): node tests/onnx/parity.mjs DIR
//
// DIR/case.json names the shapes and the raw little-endian files: tokens (int32 [T, B]),
// the initial state h0 (and c0) [L, B, H], and unroll's logits [T, B, V] and final state.
// The graph runs twice: on the whole text in one call, and one token at a time with the
// state fed back, as a sampler runs it. For every output the largest difference is taken
// relative to the largest magnitude of unroll's tensor; above case.tolerance the script
// exits 1. It prints one JSON line of the differences.
import fs from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';

const dir = process.argv[2];
const c = JSON.parse(fs.readFileSync(path.join(dir, 'case.json'), 'utf8'));
const f32 = (name) => {
  const b = fs.readFileSync(path.join(dir, name));
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};
const i32 = (name) => {
  const b = fs.readFileSync(path.join(dir, name));
  return new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};
const { T, B, L, H, V, lstm, tolerance } = c;
const tokens = i32('tokens.bin');
const want = { logits: f32('logits.bin'), hn: f32('hn.bin'), cn: lstm ? f32('cn.bin') : null };

const session = await ort.InferenceSession.create(path.join(dir, 'model.onnx'));
const state = (data) => new ort.Tensor('float32', Float32Array.from(data), [L, B, H]);

function relative(got, ref) {
  let diff = 0, scale = 0;
  for (let i = 0; i < ref.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  if (got.length !== ref.length) return Infinity;
  return diff / scale;
}

// The whole text in one call.
const feeds = {
  tokens: new ort.Tensor('int64', BigInt64Array.from(tokens, (x) => BigInt(x)), [T, B]),
  h0: state(f32('h0.bin')),
};
if (lstm) feeds.c0 = state(f32('c0.bin'));
const whole = await session.run(feeds);

// One token at a time, the state fed back.
let h = f32('h0.bin'), cc = lstm ? f32('c0.bin') : null;
const stepLogits = new Float32Array(T * B * V);
for (let t = 0; t < T; t++) {
  const one = { tokens: new ort.Tensor('int64', BigInt64Array.from(tokens.subarray(t * B, (t + 1) * B), (x) => BigInt(x)), [1, B]),
                h0: state(h) };
  if (lstm) one.c0 = state(cc);
  const r = await session.run(one);
  stepLogits.set(r.logits.data, t * B * V);
  h = r.hn.data;
  if (lstm) cc = r.cn.data;
}

const out = {
  whole: { logits: relative(whole.logits.data, want.logits), hn: relative(whole.hn.data, want.hn) },
  step: { logits: relative(stepLogits, want.logits), hn: relative(h, want.hn) },
  dims: whole.logits.dims,
};
if (lstm) {
  out.whole.cn = relative(whole.cn.data, want.cn);
  out.step.cn = relative(cc, want.cn);
}
console.log(JSON.stringify(out));
const worst = Math.max(...Object.values(out.whole), ...Object.values(out.step));
if (!(worst <= tolerance) || out.dims.join(',') !== [T, B, V].join(',')) {
  console.error(`onnxruntime differs from unroll: ${worst} relative (tolerance ${tolerance})`);
  process.exit(1);
}
