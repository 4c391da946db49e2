// DOT to SVG without a browser or a system Graphviz: Graphviz compiled to WASM, loaded once.
//
// The first call compiles the module (a few hundred milliseconds); later calls reuse it and lay a
// machine out in milliseconds. Imported on first use, so that a bundled `zd run` never loads it.
import type { Graphviz } from '@hpcc-js/wasm-graphviz';

let graphviz: Promise<Graphviz> | undefined;

export async function renderSvg(dot: string): Promise<string> {
  graphviz ??= import('@hpcc-js/wasm-graphviz').then(({ Graphviz }) => Graphviz.load());
  return (await graphviz).dot(dot, 'svg');
}
