// Validates the output of `kiln export k8s` (a v1 List) or `kiln export argo` (a Workflow) with kubernetes-models'
// validators: the official Kubernetes OpenAPI schemas (v1.32's, as kubernetes-models 5.1.0 ships them) compiled by ajv.
//   node check.mjs FILE...
// Prints one line per object checked ("ok KIND NAME" or "invalid KIND NAME: PATH KEYWORD PARAMS") and exits 1 when any
// object is invalid, 2 when a file is not such an export. What these validators do not check: unknown fields (the schemas
// have no additionalProperties: false) — the C# tests read every object back through KubernetesClient's models with
// unknown members refused for that (Schemas/README.md).
import { readFileSync } from "node:fs";
import { validate as job } from "kubernetes-models/_schemas/IoK8sApiBatchV1Job";
import { validate as networkPolicy } from "kubernetes-models/_schemas/IoK8sApiNetworkingV1NetworkPolicy";
import { validate as container } from "kubernetes-models/_schemas/IoK8sApiCoreV1Container";
import { validate as volume } from "kubernetes-models/_schemas/IoK8sApiCoreV1Volume";
import { validate as podSecurityContext } from "kubernetes-models/_schemas/IoK8sApiCoreV1PodSecurityContext";
import { validate as objectMeta } from "@kubernetes-models/apimachinery/_schemas/IoK8sApimachineryPkgApisMetaV1ObjectMeta";

let invalid = 0;

function check(validate, value, what) {
  if (validate(value)) {
    console.log(`ok ${what}`);
    return;
  }
  invalid++;
  for (const e of validate.errors ?? [])
    console.log(`invalid ${what}: ${e.instancePath || "/"} ${e.keyword} ${JSON.stringify(e.params)}`);
}

function fail(message) {
  console.error(`check.mjs: ${message}`);
  process.exit(2);
}

const files = process.argv.slice(2);
if (files.length === 0) fail("usage: node check.mjs FILE...");
for (const file of files) {
  let doc;
  try {
    doc = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    fail(`${file}: ${e.message}`);
  }
  if (doc?.kind === "List" && doc.apiVersion === "v1" && Array.isArray(doc.items)) {
    for (const item of doc.items) {
      const what = `${item?.kind} ${item?.metadata?.name}`;
      if (item?.kind === "Job") check(job, item, what);
      else if (item?.kind === "NetworkPolicy") check(networkPolicy, item, what);
      else fail(`${file}: unexpected object ${what}`);
    }
  } else if (doc?.kind === "Workflow") {
    // Argo's own types are not in kubernetes-models (Argo's vendored JSON schema checks the Workflow as a whole); the
    // Kubernetes parts of each stage template are checked here against the official Kubernetes schemas too.
    check(objectMeta, doc.metadata, `Workflow ${doc.metadata?.name} metadata`);
    for (const t of doc.spec?.templates ?? []) {
      if (!t.container) continue;
      for (const c of [...(t.initContainers ?? []), t.container]) check(container, c, `template ${t.name} container ${c?.name}`);
      for (const v of t.volumes ?? []) check(volume, v, `template ${t.name} volume ${v?.name}`);
      if (t.securityContext) check(podSecurityContext, t.securityContext, `template ${t.name} securityContext`);
    }
  } else fail(`${file}: neither the v1 List of 'kiln export k8s' nor the Workflow of 'kiln export argo'`);
}
process.exit(invalid > 0 ? 1 : 0);
