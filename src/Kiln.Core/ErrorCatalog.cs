namespace Kiln.Core;

/// <summary>One error Kiln reports: its code, the exit code it ends the process with, what it means in one line,
/// the usual next step, and the code it had before the catalog renumbered it (null when unchanged or new).</summary>
public sealed record ErrorInfo(string Code, ExitCode ExitCode, string Meaning, string Hint, string? Was = null);

/// <summary>Every error code Kiln throws, in one table: code → exit code → one-line meaning → hint.
/// The first digit of <c>KILNdnnn</c> is the exit code (usage errors, exit 64, are <c>KILN0nnn</c>).
/// <c>docs/errors.md</c> is generated from this table, and tests in Kiln.Core.Tests fail when a code under src/ is
/// missing here, when a first digit and an exit code disagree, or when the docs or the README's exit-code table are stale.</summary>
/// <remarks>Adding an error is one line in <see cref="All"/>; then run the Kiln.Core tests with
/// <c>KILN_REGENERATE_DOCS=1</c> to rewrite docs/errors.md. A message at the throw site says the specifics (which file,
/// which digest); the meaning here says the kind. Never reuse a retired code for another meaning.</remarks>
public static class ErrorCatalog
{
    /// <summary>What each exit code means (the README's and <c>kiln --help</c>'s exit-code tables list exactly these).</summary>
    public static IReadOnlyList<(ExitCode Code, string Meaning)> ExitCodes { get; } =
    [
        (ExitCode.Ok, "success"),
        (ExitCode.StageFailed, "a stage failed (its dependents were not run)"),
        (ExitCode.SpecInvalid, "`kiln.yaml` (or its params file or `kiln.lock`) is invalid, or `kiln.yaml` no longer matches `kiln.lock`; every spec error is listed with file:line:column (`kiln repro` / `kiln verify`: the run cannot be reproduced)"),
        (ExitCode.EngineUnavailable, "no Docker Engine answers"),
        (ExitCode.EnvironmentBuildFailed, "an environment could not be built"),
        (ExitCode.NotFound, "a named run, stage or environment does not exist"),
        (ExitCode.StorageFailed, "the ledger or the store under `.kiln/` could not be read or written"),
        (ExitCode.PortabilityFailed, "a push, pull, export or import failed (registry error, digest mismatch, refused capsule); nothing was half done"),
        (ExitCode.ProjectBusy, "another kiln command holds the project lock and `--no-wait` was given"),
        (ExitCode.GateRefused, "a promotion gate refused"),
        (ExitCode.DamageFound, "`kiln fsck` found damage"),
        (ExitCode.Usage, "the command line is wrong"),
        (ExitCode.Internal, "internal error (a bug in Kiln)"),
        (ExitCode.Interrupted, "interrupted (Ctrl-C or SIGTERM); containers are removed, the run is recorded as interrupted"),
    ];

    /// <summary>Every error code, ordered by code.</summary>
    public static IReadOnlyList<ErrorInfo> All { get; } =
    [
        // 0nnn: the command line is wrong (exit 64)
        new("KILN0107", ExitCode.Usage, "a registry target is not REGISTRY/REPO", "e.g. --to 127.0.0.1:5000/iris", "KILN7107"),
        new("KILN0180", ExitCode.Usage, "the ledger setting (KILN_LEDGER or settings.yaml) is not a usable postgres:// URL, or carries a password", "give ledger: postgres://USER@HOST[:PORT]/DATABASE with the password in PGPASSWORD or ~/.pgpass, or remove the setting to use .kiln/ledger.db"),
        new("KILN0190", ExitCode.Usage, "kiln env build: --update and --offline cannot be combined", "drop one of them"),
        new("KILN0401", ExitCode.Usage, "--jobs is less than 1", "give -j 1 or more", "KILN6401"),
        new("KILN0402", ExitCode.Usage, "a 'kiln run -p' override is not key=value", "e.g. -p train.C=0.5", "KILN6402"),
        new("KILN0403", ExitCode.Usage, "a 'kiln runs --param' filter is not key=value", "e.g. --param train.C=0.5", "KILN6403"),
        new("KILN0702", ExitCode.Usage, "kiln export k8s|argo: no registry to move the stages' data through (neither --registry nor KILN_CACHE), or one that is not REGISTRY/REPO (--cluster-registry: HOST:PORT)", "give --registry REGISTRY/REPO, e.g. --registry registry.example:5000/iris"),
        new("KILN0801", ExitCode.Usage, "kiln monitor --since is neither a time nor an age", "give an ISO 8601 time (2026-12-02T15:00:00Z) or an age such as 30m, 2h or 1d"),
        new("KILN0901", ExitCode.Usage, "a model or alias name is not valid", "use letters, digits, '_', '-' and '.', starting with a letter or digit (at most 64 characters)"),
        new("KILN0909", ExitCode.Usage, "no --path given and kiln.yaml declares none for the model", "name the output with --path"),
        new("KILN0916", ExitCode.Usage, "--on names no backend, or --on swarm lacks --cache", "use --on local or --on swarm --cache REGISTRY/REPO"),
        new("KILN0930", ExitCode.Usage, "kiln models push/pull: the reference is not REGISTRY/REPO[:TAG] (pull needs the tag)", "e.g. 127.0.0.1:5000/models/iris:iris-v3"),
        new("KILN0960", ExitCode.Usage, "kiln ui was asked to listen beyond 127.0.0.1 without a token, or with one under 16 characters", "give --token TOKEN (or KILN_UI_TOKEN) of 16+ characters, or drop --bind"),
        new("KILN0961", ExitCode.Usage, "kiln ui cannot listen on that address and port (in use, or not this machine's)", "pick another with --port N (0 picks a free one) or --bind ADDRESS"),
        new("KILN0962", ExitCode.Usage, "kiln ui's --port is not a port", "give 1-65535, or 0 for a free one"),
        new("KILN0963", ExitCode.Usage, "kiln ui's --bind is not an IP address", "e.g. --bind 127.0.0.1, or --bind 0.0.0.0 with --token"),

        // 1nnn: a stage failed (exit 1); 109n: kiln fsck found damage (exit 10)
        new("KILN1020", ExitCode.StageFailed, "a stage's code or input does not exist and no upstream stage makes it", "restore the file(s), or run the upstream stage that makes them"),
        new("KILN1021", ExitCode.StageFailed, "an input changed while the run was reading it", "run again once nothing is writing to the project's inputs"),
        new("KILN1090", ExitCode.DamageFound, "kiln fsck found a corrupt or missing blob", "the report names each blob and the runs it affects; re-run those stages (kiln run --force STAGE) to store good bytes"),
        new("KILN1101", ExitCode.StageFailed, "a stage output is a symbolic link that leads out of its output (or a file output that is a link)", "write the file itself, or a link that stays inside the declared output folder"),
        new("KILN1102", ExitCode.StageFailed, "a stage output is a FIFO, socket or device", "write regular files, folders and links that stay inside the output"),
        new("KILN1103", ExitCode.StageFailed, "a folder on a staged output's path was replaced by a symbolic link", "write the output as a real folder; outputs are never published through links"),
        new("KILN1104", ExitCode.StageFailed, "a folder on an output's path in the project is a symbolic link, so publishing or restoring would write outside the project", "replace the link in the project with a real folder (or remove it)"),
        new("KILN1504", ExitCode.StageFailed, "kiln serve in the background did not say ready in time", "read .kiln/serve/NAME.log, then kiln serve NAME --stop"),
        new("KILN1601", ExitCode.StageFailed, "the swarm node running a stage was lost (down or unreachable) and no retry was left", "raise the stage's retries: { node-lost: N }, and check 'docker node ls' on the manager"),
        new("KILN1701", ExitCode.StageFailed, "kiln import-run compose|k8s|argo: a stage has no result in the export (it was left out as cached, and the cache no longer has it)", "export again (kiln export compose) and run it with docker-compose up"),
        new("KILN1702", ExitCode.StageFailed, "kiln import-run compose|k8s|argo: a stage's compose service has not finished (no exit status), or left one that is not a number; or a cluster stage has published nothing under its tag", "run docker-compose -f FILE up until it ends; services never started because an upstream one failed are recorded as skipped"),
        new("KILN1911", ExitCode.StageFailed, "a stage's swarm service was removed from outside while it ran", "run again"),
        new("KILN1912", ExitCode.StageFailed, "an image has no registry reference the swarm nodes can pull", "kiln run --on swarm pushes every environment it uses; check --cache"),
        new("KILN1913", ExitCode.StageFailed, "the swarm did not run the stage's task", "check docker node ls on the manager, placement and resources"),
        new("KILN1914", ExitCode.StageFailed, "the stage exited 0 on the swarm but its executor reported no outputs", "the last lines of its log say why"),
        new("KILN1915", ExitCode.StageFailed, "an input is a symbolic link, which cannot go to the swarm yet", "replace the link with the file"),
        new("KILN1916", ExitCode.StageFailed, "a stage asks for more GPUs than any swarm node its placement allows offers", "lower resources.gpus, change the stage's placement, or start a node's dockerd with --node-generic-resource NVIDIA-GPU=… (docs/scale-out.md)"),
        new("KILN1936", ExitCode.StageFailed, "the serving container did not become ready", "fix the predictor's load() or predict(); the message shows its log"),

        // 2nnn: kiln.yaml, its params file or kiln.lock is invalid, or a run cannot be reproduced (exit 2)
        new("KILN2001", ExitCode.SpecInvalid, "kiln.yaml (or its params file) has errors, each listed with file:line:column", "fix them; 'kiln validate' checks the spec without running anything", "KILN1001"),
        new("KILN2002", ExitCode.SpecInvalid, "the stages form a cycle", "remove one of the deps that close the cycle", "KILN1002"),
        new("KILN2003", ExitCode.SpecInvalid, "the spec file cannot be read", "check that it exists and is readable by this user", "KILN1003"),
        new("KILN2004", ExitCode.SpecInvalid, "the spec file named with -f does not exist", "give the path of a kiln.yaml with -f", "KILN1004"),
        new("KILN2005", ExitCode.SpecInvalid, "no kiln.yaml in the folder or any folder above it", "run kiln in a project folder, or name it with -C DIR or -f FILE", "KILN1005"),
        new("KILN2020", ExitCode.SpecInvalid, "kiln.lock cannot be read", "restore it from version control, or delete it and run 'kiln env build' to write a new one", "KILN4020"),
        new("KILN2023", ExitCode.SpecInvalid, "kiln.yaml no longer matches kiln.lock; nothing was run", "run 'kiln env build' to update kiln.lock (then commit it), or restore kiln.yaml", "KILN4023"),
        new("KILN2030", ExitCode.SpecInvalid, "a 'kiln run -p' override names a param the params file does not have", "override an existing leaf key; 'kiln validate' shows the spec", "KILN1030"),
        new("KILN2050", ExitCode.SpecInvalid, "kiln verify: there is no succeeded run to verify (cannot reproduce)", "run the pipeline first with 'kiln run'", "KILN5004 (kiln verify with no succeeded run)"),
        new("KILN2301", ExitCode.SpecInvalid, "kiln repro/verify cannot reproduce the run: a blob it needs is missing or corrupt; nothing was run", "run 'kiln fsck' to see what is damaged; a run whose inputs are lost cannot be reproduced from its record"),
        new("KILN2701", ExitCode.SpecInvalid, "the file given to kiln import-run compose was not written by kiln export compose for this project (or its export manifest is damaged)", "give the file kiln export compose wrote, in the project that exported it"),
        new("KILN2702", ExitCode.SpecInvalid, "kiln import-run compose|k8s|argo: a stage changed since it was exported (image, command, params or outputs), so its results are not its key's", "export again, run it with docker-compose up, then import that run"),
        new("KILN2703", ExitCode.SpecInvalid, "kiln import-run k8s|argo: the file was not written by kiln export k8s|argo (no run id, or a stage without its executor's tag, input list or command)", "give the file kiln export k8s or kiln export argo wrote"),
        new("KILN2805", ExitCode.SpecInvalid, "the reference data named by serve.reference cannot be profiled", "it must be a CSV file with a header and numeric columns; name them with columns: [...]"),
        new("KILN2933", ExitCode.SpecInvalid, "kiln.yaml declares no serve section for the model", "add models: NAME: serve: predictor: FILE with load() and predict(inputs)"),

        // 3nnn: no Docker Engine (or swarm manager) answers (exit 3)
        new("KILN3001", ExitCode.EngineUnavailable, "no Docker Engine answers", "start the engine ('scripts/setup-engine.sh'), or point DOCKER_HOST at a running one; a non-root user must be in the 'docker' group"),
        new("KILN3501", ExitCode.EngineUnavailable, "kiln serve's front cannot listen on the port", "give a free port: kiln serve --port N (0 picks one)"),
        new("KILN3503", ExitCode.EngineUnavailable, "kiln serve --detach could not start its background process", "run kiln serve without --detach and read its error"),
        new("KILN3910", ExitCode.EngineUnavailable, "the swarm manager does not answer or is not a manager", "point KILN_SWARM_MANAGER (or DOCKER_HOST) at a swarm manager; scripts/swarm-up.sh makes a test swarm"),
        new("KILN3940", ExitCode.EngineUnavailable, "the engine published no host port for the serving container", "check that the port is free: kiln serve --port N"),

        // 4nnn: an environment (or serving) image could not be built (exit 4)
        new("KILN4001", ExitCode.EnvironmentBuildFailed, "a stage's image is not in the engine", "build the environment again with 'kiln env build'", "KILN3002"),
        new("KILN4002", ExitCode.EnvironmentBuildFailed, "a Dockerfile build failed", "see the build output above"),
        new("KILN4003", ExitCode.EnvironmentBuildFailed, "a Dockerfile build reported no error but produced no image", "build it again; report a bug if it persists"),
        new("KILN4004", ExitCode.EnvironmentBuildFailed, "importing a root file system into the engine failed", "see the engine's error; check its disk space"),
        new("KILN4005", ExitCode.EnvironmentBuildFailed, "the engine imported nothing", "build it again; report a bug if it persists"),
        new("KILN4006", ExitCode.EnvironmentBuildFailed, "the engine refused an image archive Kiln wrote", "see the engine's error; check its disk space"),
        new("KILN4007", ExitCode.EnvironmentBuildFailed, "the engine loaded an image with another ID than the one Kiln wrote", "report this as a Kiln bug, with the engine's version"),
        new("KILN4008", ExitCode.EnvironmentBuildFailed, "reading an image's package inventory failed", "check that the image has a shell and dpkg; see the error"),
        new("KILN4010", ExitCode.EnvironmentBuildFailed, "mmdebstrap cannot run here and no container engine was given", "run on Linux with mmdebstrap installed, or with a Docker Engine"),
        new("KILN4011", ExitCode.EnvironmentBuildFailed, "mmdebstrap failed", "see its output; check the mirror (KILN_DEBIAN_MIRROR) and the package names"),
        new("KILN4012", ExitCode.EnvironmentBuildFailed, "the Debian mirror no longer has a pinned package version", "point KILN_DEBIAN_MIRROR at a snapshot.debian.org date that has it, or 'kiln env build --update'"),
        new("KILN4013", ExitCode.EnvironmentBuildFailed, "an apt package does not exist", "check the names under 'apt:' in kiln.yaml"),
        new("KILN4014", ExitCode.EnvironmentBuildFailed, "the mmdebstrap builder image is not in the engine", "build or pull the builder image the message names"),
        new("KILN4021", ExitCode.EnvironmentBuildFailed, "a locked environment rebuilt differently: the mirror no longer has the locked versions", "point KILN_DEBIAN_MIRROR at a snapshot that has them, or 'kiln env build --update'"),
        new("KILN4022", ExitCode.EnvironmentBuildFailed, "a locked environment rebuilt with the locked packages but another image ID", "report this as a Kiln bug; 'kiln env build --update' accepts the new image"),
        new("KILN4030", ExitCode.EnvironmentBuildFailed, "the wheelhouse is not a folder", "create it, or fix 'wheelhouse:' in kiln.yaml"),
        new("KILN4031", ExitCode.EnvironmentBuildFailed, "a file in the wheelhouse is not a wheel file name", "remove it, or rename it to name-version[-build]-python-abi-platform.whl"),
        new("KILN4032", ExitCode.EnvironmentBuildFailed, "the wheelhouse has no wheel for a requirement", "put the wheel and its dependencies' wheels in the wheelhouse (pip runs offline)"),
        new("KILN4033", ExitCode.EnvironmentBuildFailed, "a wheel in the wheelhouse is not the one kiln.lock pins", "restore the locked wheel, or take the new one with 'kiln env build --update'"),
        new("KILN4035", ExitCode.EnvironmentBuildFailed, "pip failed", "see pip's output"),
        new("KILN4037", ExitCode.EnvironmentBuildFailed, "a wheel changed while the environment was built, so it cannot be kept in the package closure", "build again once nothing writes to the wheelhouse"),
        new("KILN4040", ExitCode.EnvironmentBuildFailed, "an offline rebuild is refused: a locked package is in neither the package closure (kiln.lock's debs, in .kiln/store) nor any mirror", "'kiln pull' fetches the closure from the registry it was pushed to; or import a capsule exported with --with-closure, run 'kiln env verify' where the mirror has the locked versions, or build online with KILN_DEBIAN_MIRROR at a snapshot"),
        new("KILN4041", ExitCode.EnvironmentBuildFailed, "the package closure could not be indexed as a local repository (dpkg-scanpackages missing or failing)", "install dpkg-dev; 'kiln fsck' checks the store"),
        new("KILN4930", ExitCode.EnvironmentBuildFailed, "the environment image reports no layers", "rebuild the environment with 'kiln env build'"),
        new("KILN4931", ExitCode.EnvironmentBuildFailed, "Kiln's inference server is not where kiln serve looks for it", "run scripts/setup.sh (it publishes it), or set KILN_SERVE_DIR"),
        new("KILN4932", ExitCode.EnvironmentBuildFailed, "the engine loaded the serving image under another ID than Kiln wrote", "the environment image must be in the engine: 'kiln env build' brings it back"),
        new("KILN4934", ExitCode.EnvironmentBuildFailed, "the model version's environment image is not in the engine", "rebuild it with 'kiln env build' (the same ID comes back) or 'kiln pull'"),

        // 5nnn: a named thing does not exist (exit 5)
        new("KILN5001", ExitCode.NotFound, "no run with that id", "'kiln runs' lists the recorded runs"),
        new("KILN5002", ExitCode.NotFound, "a run id prefix matches more than one run", "give more characters of the run id"),
        new("KILN5003", ExitCode.NotFound, "no environment with that name", "the message lists the environments"),
        new("KILN5004", ExitCode.NotFound, "an environment is neither in kiln.lock nor built", "build it with 'kiln env build ENV'"),
        new("KILN5005", ExitCode.NotFound, "the thing to compare with does not exist (no kiln.lock to verify against, no run with that metric)", "the message says what to create first"),
        new("KILN5006", ExitCode.NotFound, "'kiln env diff' names no environment, lock file or image", "give an environment name, a kiln.lock path, or an image tag or ID"),
        new("KILN5007", ExitCode.NotFound, "no stage with that name", "the spec's stages are listed by 'kiln status'", "KILN1010"),
        new("KILN5010", ExitCode.NotFound, "there is no capsule file at that path", "name the file that 'kiln export' wrote"),
        new("KILN5011", ExitCode.NotFound, "kiln ledger migrate --from names no ledger file", "give the project's .kiln/ledger.db"),
        new("KILN5012", ExitCode.NotFound, "kiln env sbom: the environment is not in kiln.lock (or there is no kiln.lock), so there is no inventory to list", "build it with 'kiln env build ENV', which writes kiln.lock"),
        new("KILN5013", ExitCode.NotFound, "kiln env sbom: the environment's locked image is not in the engine", "'kiln env build ENV' rebuilds it from kiln.lock, or 'kiln pull' fetches it"),
        new("KILN5109", ExitCode.NotFound, "kiln.lock pins no registry digest to pull", "run 'kiln push --to REGISTRY/REPO' where the environments were built, and commit kiln.lock", "KILN7109"),
        new("KILN5701", ExitCode.NotFound, "kiln import-run compose: the export folder under .kiln/compose/ is gone (imported already, or removed)", "run kiln export compose again, then docker-compose up, then kiln import-run compose FILE"),
        new("KILN5801", ExitCode.NotFound, "kiln monitor: the model is not being served (its last deployment is not serving)", "start it with kiln serve NAME --detach, or point --url at a server"),
        new("KILN5802", ExitCode.NotFound, "kiln monitor: the model's server does not answer, or answers an error", "check that its container runs (kiln models history); the message shows what it answered"),
        new("KILN5803", ExitCode.NotFound, "kiln monitor: the served version logs no inputs (served without a reference profile)", "declare serve.reference in kiln.yaml (docs/monitoring.md) and run kiln serve again"),
        new("KILN5804", ExitCode.NotFound, "the reference data named by serve.reference does not exist", "run the stage that writes it, or fix serve.reference"),
        new("KILN5902", ExitCode.NotFound, "the run has no output with that path", "give one of the run's outputs with --path"),
        new("KILN5903", ExitCode.NotFound, "the stage that makes the output did not succeed, so it cannot be registered", "register an output of a run whose stage succeeded; 'kiln runs' lists them"),
        new("KILN5904", ExitCode.NotFound, "no model with that name in the registry", "'kiln models list' lists the registered models; 'kiln models register' adds one"),
        new("KILN5905", ExitCode.NotFound, "the model has no version with that number", "'kiln models show NAME' lists its versions"),
        new("KILN5906", ExitCode.NotFound, "the alias has no earlier version to roll back to", "'kiln models history NAME' shows how the alias moved"),
        new("KILN5907", ExitCode.NotFound, "the stage has no recorded environment image, so the model's lineage would be incomplete", "re-run the stage with kiln run, then register the new run's output"),
        new("KILN5908", ExitCode.NotFound, "the model has no such alias", "'kiln models promote NAME VERSION --to ALIAS' sets it"),
        new("KILN5911", ExitCode.NotFound, "--from latest: no run has succeeded yet", "'kiln run' makes one"),
        new("KILN5930", ExitCode.NotFound, "kiln models pull: the registry has no such tag", "check the reference; kiln models push prints the tag it wrote (default NAME-vVERSION)"),
        new("KILN5935", ExitCode.NotFound, "the model version's artifact is neither in the store nor in the project", "'kiln repro RUN' recreates it"),

        // 6nnn: the ledger or the store could not be read or written (exit 6)
        new("KILN6001", ExitCode.StorageFailed, "the run ledger cannot be opened, read or written", "the message says why (damaged, locked, read-only, disk full) and what to do"),
        new("KILN6002", ExitCode.StorageFailed, "the team ledger (PostgreSQL) cannot be reached; a run keeps its record in .kiln/ledger-journal/ meanwhile", "start or reach the server; the next kiln command that reaches it writes the journaled runs"),
        new("KILN6003", ExitCode.StorageFailed, "the team ledger's schema is newer than this kiln; nothing was changed", "upgrade kiln on this machine"),
        new("KILN6004", ExitCode.StorageFailed, "the team ledger (PostgreSQL) refused an operation (authentication, rights)", "check the user, PGPASSWORD or the pgpass file, and the user's rights on the database"),
        new("KILN6005", ExitCode.StorageFailed, "kiln ledger migrate: a model has a different version or alias event in the target ledger; nothing of it was written", "copy into an empty team ledger, or rename the model in one of them first"),
        new("KILN6201", ExitCode.StorageFailed, "the content store has no blob with that digest", "run the stage that produced it again"),
        new("KILN6202", ExitCode.StorageFailed, "a blob in the content store is corrupt", "delete it and run the stage that produced it again; check the disk"),
        new("KILN6203", ExitCode.StorageFailed, "a path to hash or store does not exist", "check the path in kiln.yaml, or run the stage that produces it first"),
        new("KILN6204", ExitCode.StorageFailed, "a FIFO, socket or device file where Kiln hashes or stores", "move it out of the declared path"),
        new("KILN6205", ExitCode.StorageFailed, "a file kept changing while Kiln read it", "stop the process that writes to it, then run kiln again"),
        new("KILN6206", ExitCode.StorageFailed, "a file could not be read or written", "check permissions and free disk space"),
        new("KILN6207", ExitCode.StorageFailed, "a stored tree manifest is not valid", "delete the blob and run the stage that produced it again"),
        new("KILN6208", ExitCode.StorageFailed, "a path is a file where a directory was expected, or the other way round", "name the right kind of path"),
        new("KILN6215", ExitCode.StorageFailed, "recording an imported run in the ledger failed; nothing was imported", "see the ledger error; fix it and import again", "KILN7215"),
        new("KILN6220", ExitCode.StorageFailed, "the ledger is missing while the content store beside it has content", "restore .kiln/ledger.db from a backup, or run again with --new-ledger to start an empty history"),
        new("KILN6231", ExitCode.StorageFailed, "a cached output does not hash to the digest it was stored under; the blob is quarantined and the stage re-run", "nothing to do for the run; run 'kiln fsck' to check the rest of the store and the disk"),
        new("KILN6701", ExitCode.StorageFailed, "kiln export --only-stale: a cache entry went away while its outputs were being restored", "export again"),
        new("KILN6810", ExitCode.StorageFailed, "the reference profile recorded with a model version is not in the content store", "run kiln models register NAME --from RUN again with that version's run: it profiles the same data and puts the profile back"),
        new("KILN6811", ExitCode.StorageFailed, "the stored reference profile of a model version does not match its digest or is not a profile; it was quarantined", "run kiln models register NAME --from RUN again with that version's run; kiln fsck checks the rest of the store"),
        new("KILN6812", ExitCode.StorageFailed, "the stored run output named by serve.reference does not hash to its digest; it was quarantined", "kiln repro RUN makes the output again; kiln fsck checks the rest of the store"),
        new("KILN6936", ExitCode.StorageFailed, "kiln serve: the predictor that travelled with a pulled model version is not in the store, or does not hash to its digest (then it was quarantined)", "pull the version again: kiln models pull REFERENCE (the message names it)"),

        // 7nnn: a push, pull, export, import or remote-cache transfer failed (exit 7)
        new("KILN7100", ExitCode.PortabilityFailed, "a push or pull failed", "see the engine's error"),
        new("KILN7101", ExitCode.PortabilityFailed, "the registry cannot be reached", "check the address and that the registry is running"),
        new("KILN7102", ExitCode.PortabilityFailed, "the registry refused the push or pull (authentication or permission)", "log in with 'docker login REGISTRY'"),
        new("KILN7103", ExitCode.PortabilityFailed, "the registry has no such manifest", "push it first ('kiln push'), or check kiln.lock's digest"),
        new("KILN7104", ExitCode.PortabilityFailed, "an image to push or export is not in the engine", "build or pull it first"),
        new("KILN7105", ExitCode.PortabilityFailed, "the engine reported a push or pull done but no digest or image", "try again; report a bug if it persists"),
        new("KILN7106", ExitCode.PortabilityFailed, "the engine reaches a registry that is not this machine over plain HTTP", "use a registry with TLS, or pass --allow-insecure"),
        new("KILN7108", ExitCode.PortabilityFailed, "a pulled image is not the image kiln.lock records", "push the environment again from the machine that built it, or fix kiln.lock"),
        new("KILN7110", ExitCode.PortabilityFailed, "kiln push: a declarative environment's package closure is incomplete in kiln.lock or not all in .kiln/store, so it cannot go with the image", "run 'kiln env verify' where the mirror has the locked versions, or 'kiln pull' the closure; or push the images only with --no-closure"),
        new("KILN7111", ExitCode.PortabilityFailed, "kiln pull: the registry holds no usable package closure for an environment (none pushed, not Kiln's, or leaving out a file kiln.lock names)", "push again from a project whose .kiln/store has the closure; or pull the images only with --no-closure"),
        new("KILN7200", ExitCode.PortabilityFailed, "a capsule was refused", "get a fresh copy of the capsule; nothing was imported"),
        new("KILN7201", ExitCode.PortabilityFailed, "a capsule is malformed (not a capsule, or a member cannot be parsed)", "this file is not a capsule written by 'kiln export', or it was tampered with"),
        new("KILN7202", ExitCode.PortabilityFailed, "a capsule member has an unsafe path (absolute, '..')", "the capsule was tampered with; nothing was imported"),
        new("KILN7203", ExitCode.PortabilityFailed, "a capsule holds a link, or a stored tree's link points out of it", "the capsule was tampered with; nothing was imported"),
        new("KILN7204", ExitCode.PortabilityFailed, "a capsule member does not hash to its digest", "the capsule was changed or damaged: get a fresh copy"),
        new("KILN7205", ExitCode.PortabilityFailed, "a capsule member does not have its listed size", "the capsule was changed or damaged: get a fresh copy"),
        new("KILN7206", ExitCode.PortabilityFailed, "a capsule is cut short", "copy it again and compare its sha256 with the sender's"),
        new("KILN7207", ExitCode.PortabilityFailed, "a capsule holds the same member twice", "the capsule was tampered with; nothing was imported"),
        new("KILN7208", ExitCode.PortabilityFailed, "a capsule holds a member its manifest does not list", "the capsule was tampered with; nothing was imported"),
        new("KILN7209", ExitCode.PortabilityFailed, "a capsule lacks something its run needs", "export the run again from a store that has everything"),
        new("KILN7210", ExitCode.PortabilityFailed, "an import would overwrite something in the target", "import into another folder, or remove what is in the way"),
        new("KILN7211", ExitCode.PortabilityFailed, "the export's output file exists or is a folder", "name another file with -o, or add --force"),
        new("KILN7212", ExitCode.PortabilityFailed, "a run cannot be exported: blobs or images it needs are missing", "only a succeeded run whose blobs are still in the store can be exported"),
        new("KILN7213", ExitCode.PortabilityFailed, "a file is too large to carry as capsule metadata", "keep it smaller than the limit the message gives"),
        new("KILN7214", ExitCode.PortabilityFailed, "the engine saved another image than the one asked for", "export again once no tag moves"),
        new("KILN7216", ExitCode.PortabilityFailed, "kiln export --with-closure: a .deb or wheel of the package closure kiln.lock lists is not in the store", "run 'kiln env verify' (it keeps the .debs), then export again"),
        new("KILN7301", ExitCode.PortabilityFailed, "a capsule is of a format version this Kiln does not read (v1, or a newer one)", "export the run again with this Kiln, or import it with the Kiln version manifest.json names"),
        new("KILN7701", ExitCode.PortabilityFailed, "kiln import-run compose|k8s|argo: the export's run is already in the ledger (imported before)", "kiln runs show RUN shows it; export again for a new run"),
        new("KILN7702", ExitCode.PortabilityFailed, "kiln export k8s|argo: an environment has no registry digest in kiln.lock (never pushed, or changed since), and a cluster pulls images only by digest", "kiln push ENV --to REGISTRY/REPO, commit kiln.lock, export again"),
        new("KILN7703", ExitCode.PortabilityFailed, "kiln export k8s|argo: a stage reads a file that is not in the project and that no exported stage writes", "run the stage that writes it (kiln run), or export with --only-stale so that cached outputs are restored and uploaded"),
        new("KILN7704", ExitCode.PortabilityFailed, "kiln export k8s|argo: a stage reads a path with a line break, which the stage executor's input list cannot carry", "rename the file"),
        new("KILN7921", ExitCode.PortabilityFailed, "the remote cache registry did not answer", "check that it runs and that this machine reaches it"),
        new("KILN7922", ExitCode.PortabilityFailed, "the remote cache registry refused a request", "the message gives its HTTP status and answer"),
        new("KILN7923", ExitCode.PortabilityFailed, "bytes from the registry do not match their digest; they were refused", "nothing of them was used; the stage runs instead"),
        new("KILN7924", ExitCode.PortabilityFailed, "a remote cache entry (or a cluster stage's published output list) was refused (another key, an undeclared output, an unsafe path, bad bytes)", "nothing of it was used; delete the tag in the registry"),
        new("KILN7926", ExitCode.PortabilityFailed, "the registry sent more bytes than allowed", "nothing of it was used"),
        new("KILN7930", ExitCode.PortabilityFailed, "kiln models pull: the tag is not a Kiln model version (manifest or lineage malformed, or its environment image elsewhere)", "nothing was registered; name a tag that kiln models push wrote"),
        new("KILN7931", ExitCode.PortabilityFailed, "kiln models pull: the manifest names another artifact or predictor (digest or size) than its lineage", "nothing was registered; push the version again from the project that registered it"),
        new("KILN7932", ExitCode.PortabilityFailed, "kiln models push: the model's predictor file is over the 4 MiB a pushed version may carry", "keep the predictor to its load() and predict() code; data belongs in the model artifact"),

        // 8nnn: the project is busy (exit 8)
        new("KILN8202", ExitCode.ProjectBusy, "another kiln command holds the project lock and --no-wait was given", "wait for it (run again without --no-wait), or stop the command named in the message"),
        new("KILN8502", ExitCode.ProjectBusy, "kiln serve already serves this model from this project (its front is running)", "use the running one (its port is in the message), or stop it first: kiln serve NAME --stop"),

        // 9nnn: a promotion gate refused (exit 9)
        new("KILN9110", ExitCode.GateRefused, "a promotion gate refused: the version's metrics fail a gate kiln.yaml declares", "the message names the gate and the metric's value; promote a version that passes, or change the gate"),
        new("KILN9111", ExitCode.GateRefused, "a drift gate refused: the live inputs of the served model drift from the training data of the version to promote beyond max_psi", "the message names each feature and its PSI; kiln monitor shows the drift; promote a version trained on data like today's inputs, or change the gate"),
        new("KILN9112", ExitCode.GateRefused, "a drift gate cannot be checked (no reference profile, nothing served, too few live rows, or an unusable input log), so it refuses", "the message says what is missing: serve the model and let traffic arrive, or scope the gate to a later alias"),
        new("KILN9113", ExitCode.GateRefused, "a 'verified' gate refused: no recorded kiln verify (or kiln repro) of the version's run rebuilt its artifact bit for bit", "run 'kiln verify RUN' for the run the message names, then promote again; if it diverges, make the stage deterministic first"),
        new("KILN9114", ExitCode.GateRefused, "a 'warmup' gate refused: the candidate's serving container was not ready in time, exited, answered a warm-up inference with an error or a malformed body, or its /metrics counts a 5xx answer or a worker restart", "the message says which and shows the container's last log lines; fix the predictor, register the new version and promote it"),
    ];

    /// <summary>Codes that are no longer thrown, and what replaced them (never reuse one).</summary>
    public static IReadOnlyList<(string Code, string Now)> Retired { get; } =
    [
        ("KILN4034", "an internal error (exit 70): pip installed a file that is not a wheel of the wheelhouse, which Kiln forbids it to"),
        ("KILN4036", "an internal error (exit 70): a caller of the library built a pip environment without a container engine"),
        ("KILN0701", "kiln export k8s|argo no longer takes --pvc: the stages move their data through the registry (--registry)"),
    ];

    private static readonly Dictionary<string, ErrorInfo> ByCode = All.ToDictionary(e => e.Code, StringComparer.Ordinal);

    /// <summary>The entry of <paramref name="code"/>, or null when the catalog has none.</summary>
    public static ErrorInfo? Find(string code) => ByCode.GetValueOrDefault(code);

    /// <summary>The exit code of <paramref name="code"/>; <see cref="ExitCode.Internal"/> for a code the catalog lacks
    /// (a test keeps every code under src/ in the catalog).</summary>
    public static ExitCode ExitCodeOf(string code) => ByCode.TryGetValue(code, out var e) ? e.ExitCode : ExitCode.Internal;
}
