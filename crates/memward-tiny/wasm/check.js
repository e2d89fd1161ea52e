// Runs the memward-tiny wasm module under Node.js (scripts/wasm-size): the wee_alloc pattern
// must not grow linear memory, memory must grow on demand, data must survive, and running
// out of memory (the module is linked with a 4 MiB maximum) must return 0, not trap.
"use strict";
const fs = require("fs");
const bytes = fs.readFileSync(process.argv[2]);
const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
const { alloc, dealloc, realloc, memory } = instance.exports;
function fail(msg) {
  console.error("FAIL: " + msg);
  process.exit(1);
}
const page = 65536;

// 1. The wee_alloc pattern: two large blocks freed in allocation order, over and over.
let size0 = null;
for (let round = 0; round < 10000; round++) {
  const a = alloc(20000);
  const b = alloc(20000);
  if (a === 0 || b === 0) fail("wee_alloc pattern: allocation failed in round " + round);
  dealloc(a, 20000);
  dealloc(b, 20000);
  if (round === 0) size0 = memory.buffer.byteLength;
  else if (memory.buffer.byteLength !== size0)
    fail("wee_alloc pattern grew memory from " + size0 + " to " + memory.buffer.byteLength + " in round " + round);
}

// 2. Growth on demand, and contents that survive reallocation.
const blocks = [];
for (let i = 0; i < 20; i++) {
  const p = alloc(100000);
  if (p === 0) fail("growth: allocation " + i + " failed");
  new Uint8Array(memory.buffer, p, 100000).fill(i + 1);
  blocks.push(p);
}
if (memory.buffer.byteLength < 20 * 100000) fail("memory did not grow");
let q = realloc(blocks[0], 100000, 150000);
if (q === 0) fail("realloc failed");
const view = new Uint8Array(memory.buffer, q, 100000);
if (!view.every((x) => x === 1)) fail("realloc lost the block's contents");
blocks[0] = q;
for (let i = 1; i < 20; i++) {
  if (!new Uint8Array(memory.buffer, blocks[i], 100000).every((x) => x === i + 1))
    fail("block " + i + " was overwritten");
}

// 3. Out of memory: past the module's maximum, alloc returns 0 and the module still works.
const big = [];
let p;
while ((p = alloc(200000)) !== 0) big.push(p);
if (memory.buffer.byteLength > 4 * 1024 * 1024) fail("grew past the maximum");
for (const b of big) dealloc(b, 200000);
dealloc(blocks[0], 150000);
for (let i = 1; i < 20; i++) dealloc(blocks[i], 100000);
const again = alloc(1000000);
if (again === 0) fail("after freeing everything a 1 MB block did not fit");
console.log("wasm checks passed: wee_alloc pattern stable at " + size0 / page + " pages, " +
  "grew to " + memory.buffer.byteLength / page + " pages, OOM returned 0 after " + big.length + " blocks");
