// Generates text from a character model that `unroll export --onnx` wrote, in onnxruntime
// for Node.js: the whole of what a program needs to run an unroll model without unroll.
//
//   node tests/onnx/sample.mjs MODEL.onnx [--prime TEXT] [-n 200] [--temperature 0.8] [--seed 1]
//
// --temperature 0 is greedy (always the likeliest character), the same text as
// `unroll sample CK --greedy`. The vocabulary comes from the model's metadata.
import fs from 'node:fs';
import ort from 'onnxruntime-node';

const args = process.argv.slice(2);
const opt = { prime: '', n: 200, temperature: 0.8, seed: 1 };
let file = null;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--prime' || a === '-p') opt.prime = args[++i];
  else if (a === '-n') opt.n = Number(args[++i]);
  else if (a === '--temperature' || a === '-t') opt.temperature = Number(args[++i]);
  else if (a === '--seed') opt.seed = Number(args[++i]);
  else file = a;
}
if (!file) {
  console.error('usage: node sample.mjs MODEL.onnx [--prime TEXT] [-n 200] [--temperature 0.8] [--seed 1]');
  process.exit(2);
}

const session = await ort.InferenceSession.create(file);
// onnxruntime-node does not expose metadata_props: readMetadata (below) reads them.
const meta = readMetadata(file);
const vocab = JSON.parse(meta['unroll.vocab']);
const model = JSON.parse(meta['unroll.model']);
if (vocab.level !== 'char') throw new Error('this sampler reads character models');
const index = new Map(vocab.tokens.map((t, i) => [t, i]));
const L = model.layers, H = model.hidden, lstm = model.cell === 'lstm';

let h = new Float32Array(L * H), c = new Float32Array(L * H);
async function step(ids) {  // ids: token ids, run as one stream; returns the last logits
  const feeds = {
    tokens: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [ids.length, 1]),
    h0: new ort.Tensor('float32', h, [L, 1, H]),
  };
  if (lstm) feeds.c0 = new ort.Tensor('float32', c, [L, 1, H]);
  const r = await session.run(feeds);
  h = r.hn.data;
  if (lstm) c = r.cn.data;
  const V = r.logits.dims[2];
  return r.logits.data.subarray((ids.length - 1) * V, ids.length * V);
}

let seed = opt.seed >>> 0 || 1;
function random() {  // xorshift32: a reproducible stream of numbers in [0, 1)
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed / 4294967296;
}
function pick(logits) {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  if (opt.temperature <= 0) return best;
  const p = Array.from(logits, (z) => Math.exp((z - logits[best]) / opt.temperature));
  let u = random() * p.reduce((s, x) => s + x, 0);
  for (let i = 0; i < p.length; i++) if ((u -= p[i]) < 0) return i;
  return p.length - 1;
}

const primeIds = Array.from(opt.prime, (ch) => {
  if (!index.has(ch)) throw new Error(`the prime's character ${JSON.stringify(ch)} is not in the vocabulary`);
  return index.get(ch);
});
// Without a prime, generation starts after a line end (or <eos>, or token 0), as unroll's does.
if (primeIds.length === 0) primeIds.push(index.get('\n') ?? index.get('<eos>') ?? 0);
let logits = await step(primeIds);
let out = opt.prime;
for (let i = 0; i < opt.n; i++) {
  const id = pick(logits);
  out += vocab.tokens[id];
  logits = await step([id]);
}
process.stdout.write(out + '\n');

// The metadata_props of an ONNX file: ModelProto field 14 holds StringStringEntryProto
// messages (key = field 1, value = field 2). A minimal protobuf walk over the top level.
function readMetadata(path) {
  const buf = fs.readFileSync(path);
  let pos = 0;
  const varint = () => {
    let v = 0n, shift = 0n;
    for (;;) {
      const b = buf[pos++];
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
      shift += 7n;
    }
  };
  const fields = (end, onField) => {
    while (pos < end) {
      const key = Number(varint()), field = key >> 3, wire = key & 7;
      if (wire === 0) varint();
      else if (wire === 1) pos += 8;
      else if (wire === 5) pos += 4;
      else if (wire === 2) {
        const len = Number(varint()), start = pos;
        onField(field, start, start + len);
        pos = start + len;
      } else throw new Error(`${path}: not an ONNX file`);
    }
  };
  const meta = {};
  fields(buf.length, (field, start, end) => {
    if (field !== 14) return;
    let key = '', value = '';
    fields(end, (f, s, e) => {
      const text = buf.subarray(s, e).toString('utf8');
      if (f === 1) key = text;
      else if (f === 2) value = text;
    });
    meta[key] = value;
  });
  return meta;
}
