/** Exit codes the primary can end with (docs/contract.md lists them). */
export const EXIT = { ok: 0, fatal: 1, usage: 2, forcedInt: 130, forcedTerm: 143 } as const;
