// Check a bundle's golden examples with onnxruntime-node, as a JavaScript service would.
//
//   npm install --ignore-scripts onnxruntime-node     # the CPU binaries ship in the package
//   node examples/node/check_golden.mjs <bundle dir>
//
// Feeds golden.json's input tensors (dtypes and names from preprocessing.json) to model.onnx
// and compares every output with golden.json's expected outputs using its tolerance:
// |got - expected| <= atol + rtol * |expected|. A reimplementation of the features would first
// compare its own tensors with golden.json's `inputs` (ids exactly, floats within 1e-6 relative).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(join(process.cwd(), "noop.js"));
const ort = require("onnxruntime-node");
const bundle = process.argv[2];
if (!bundle) throw new Error("usage: node check_golden.mjs <bundle dir>");
const spec = JSON.parse(readFileSync(join(bundle, "preprocessing.json"), "utf8"));
const golden = JSON.parse(readFileSync(join(bundle, "golden.json"), "utf8"));

const shapeOf = (v) => (Array.isArray(v) ? [v.length, ...shapeOf(v[0])] : []);
const feeds = {};
for (const { name, dtype } of spec.onnx.inputs) {
  const value = golden.inputs[name];
  const flat = [value].flat(Infinity);
  const data = dtype === "int64" ? BigInt64Array.from(flat, BigInt) : Float32Array.from(flat);
  feeds[name] = new ort.Tensor(dtype, data, shapeOf(value));
}
const session = await ort.InferenceSession.create(join(bundle, "model.onnx"));
const out = await session.run(feeds);
const { rtol, atol } = golden.tolerance.outputs;
let failures = 0;
console.log(`onnxruntime-node ${ort.env.versions.node}, ${golden.customer_id.length} customers, as_of ${golden.as_of}`);
for (const [name, expected] of Object.entries(golden.outputs)) {
  const want = [expected].flat(Infinity);
  const got = out[name].data;
  let maxAbs = 0, maxRel = 0, bad = 0;
  want.forEach((w, i) => {
    const d = Math.abs(got[i] - w);
    maxAbs = Math.max(maxAbs, d);
    maxRel = Math.max(maxRel, d / Math.max(Math.abs(w), 1e-12));
    if (!(d <= atol + rtol * Math.abs(w))) bad += 1;
  });
  failures += bad;
  console.log(`${name.padEnd(18)} n=${String(want.length).padStart(4)}  max abs ${maxAbs.toExponential(2)}  max rel ${maxRel.toExponential(2)}  ${bad ? `${bad} OUT OF TOLERANCE` : "ok"}`);
}
process.exit(failures ? 1 : 0);
