// Node-RED settings for bench/http_inbound.py: only the benchmark flow's HTTP endpoint,
// no editor, no admin API, quiet logs, the default (in-memory) context store.
// The benchmark copies this file and flows.json into a temporary user folder.
module.exports = {
    uiHost: "127.0.0.1",
    uiPort: parseInt(process.env.PORT || "1880", 10),
    flowFile: "flows.json",
    flowFilePretty: true,
    credentialSecret: false,
    httpAdminRoot: false,      // no editor and no admin API: we measure the flow alone
    httpNodeRoot: "/",
    httpNodeCors: false,
    apiMaxLength: "1mb",
    // Context (flow.get/set, global.get/set) lives in memory: a restart forgets it.
    contextStorage: { default: { module: "memory" } },
    logging: { console: { level: "warn", metrics: false, audit: false } },
    diagnostics: { enabled: false },
    runtimeState: { enabled: false },
    telemetry: { enabled: false },
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
    functionExternalModules: false,
    exportGlobalContextKeys: false,
};
