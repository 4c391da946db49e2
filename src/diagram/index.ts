// Diagrams generated from the xstate machines: Mermaid and DOT text (pure), and SVG via WASM Graphviz.
export { machineModel, stateIds, type MachineModel, type StateInfo, type TransitionInfo } from './model.ts';
export { machineToMermaid, mermaidIds } from './mermaid.ts';
export { machineToDot, initialDotId, transitionEdgeId, DOT_STYLE, type DotOptions } from './dot.ts';
export { renderSvg } from './render.ts';
export { diagramFiles } from './files.ts';
export { MACHINES, type MachineName } from './machines.ts';
