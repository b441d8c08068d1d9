// Parses each Mermaid file named on the command line with Mermaid's own parser
// (mermaid.parse, the grammar the renderers use) and exits non-zero on the first error.
// Mermaid needs a DOM even to parse (its sanitizer hooks into DOMPurify): jsdom provides one.
import { readFileSync } from 'node:fs';
import { JSDOM } from 'jsdom';

const dom = new JSDOM('<!DOCTYPE html><body></body>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import('mermaid');

if (process.argv.length < 3) {
  console.error('usage: node check.mjs FILE.mmd...');
  process.exit(2);
}
for (const file of process.argv.slice(2)) {
  try {
    const result = await mermaid.parse(readFileSync(file, 'utf8'));
    console.log(`${file}: ok (${result.diagramType})`);
  } catch (e) {
    console.error(`${file}: ${e.message}`);
    process.exit(1);
  }
}
