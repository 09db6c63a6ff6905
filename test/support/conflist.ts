/** CNI network configuration lists, as the e2e suites write and pass them. */

export type Json = string | number | boolean | null | readonly Json[] | { readonly [key: string]: Json };
export type JsonObject = { readonly [key: string]: Json };

export interface PluginConf {
  readonly type: string;
  readonly [key: string]: Json;
}

export interface Conflist {
  readonly cniVersion: string;
  readonly name: string;
  readonly plugins: readonly PluginConf[];
  readonly [key: string]: Json;
}
