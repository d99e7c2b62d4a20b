using System.CommandLine;
using StreamGrains.Benchmarks.Backpressure;
using StreamGrains.Benchmarks.Checkpoints;
using StreamGrains.Benchmarks.Savepoints;
using StreamGrains.Benchmarks.Throughput;

var root = new RootCommand("StreamGrains benchmarks. Each prints one JSON object per line; the last line is the summary.");

var events = new Option<long>("--events") { Description = "Number of generated events.", DefaultValueFactory = _ => 5_000_000 };
var keys = new Option<long>("--keys") { Description = "Number of distinct keys.", DefaultValueFactory = _ => 100_000 };
var parallelism = new Option<int>("--parallelism") { Description = "Parallelism of the job.", DefaultValueFactory = _ => 2 };
var cacheEntries = new Option<int>("--cache-entries") { Description = "Write-back cache entries per keyed operator (0 disables it).", DefaultValueFactory = _ => 65_536 };
var seed = new Option<long>("--seed") { Description = "Generator seed.", DefaultValueFactory = _ => 42 };
var runs = new Option<int>("--runs") { Description = "Measured runs; the summary reports medians.", DefaultValueFactory = _ => 3 };
var throughput = new Command("throughput", "Keyed count through the engine vs a raw single-threaded RocksDB get+put loop over the same keys.") { events, keys, parallelism, cacheEntries, seed, runs };
throughput.SetAction((r, ct) => ThroughputBenchmark.RunAsync(
    new ThroughputSettings(r.GetValue(events), r.GetValue(keys), r.GetValue(parallelism), r.GetValue(cacheEntries), r.GetValue(seed), r.GetValue(runs)), ct));
root.Subcommands.Add(throughput);

var bpEvents = new Option<long>("--events") { Description = "Events of the small phase (the large phase runs 4x as many).", DefaultValueFactory = _ => 500_000 };
var rate = new Option<int>("--sink-rate") { Description = "Records per second the throttled sink accepts.", DefaultValueFactory = _ => 250_000 };
var credits = new Option<int>("--credits") { Description = "Credits per channel.", DefaultValueFactory = _ => 4 };
var batch = new Option<int>("--batch-size") { Description = "Records per batch.", DefaultValueFactory = _ => 1024 };
var backpressure = new Command("backpressure", "A fast source into a throttled sink: in-flight batches and memory stay bounded.") { bpEvents, rate, credits, batch };
backpressure.SetAction((r, ct) => BackpressureBenchmark.RunAsync(new BackpressureSettings(r.GetValue(bpEvents), r.GetValue(rate), r.GetValue(credits), r.GetValue(batch)), ct));
root.Subcommands.Add(backpressure);

var stateMb = new Option<int>("--state-mb") { Description = "Keyed state to load, in MiB of values.", DefaultValueFactory = _ => 2000 };
var storage = new Option<string>("--storage") { Description = "Checkpoint storage: filesystem (a temp directory) or blob (Azure Blob Storage on an Azurite started here).", DefaultValueFactory = _ => "filesystem" };
var valueBytes = new Option<int>("--value-bytes") { Description = "Bytes per key.", DefaultValueFactory = _ => 1024 };
var updateRate = new Option<double>("--update-rate") { Description = "Key updates per second once the state is loaded.", DefaultValueFactory = _ => 5_000 };
var stateParallelism = new Option<int>("--parallelism") { Description = "Parallelism of the job.", DefaultValueFactory = _ => 2 };
var silos = new Option<int>("--silos") { Description = "Silos of the in-process cluster.", DefaultValueFactory = _ => 2 };
var processes = new Option<bool>("--processes") { Description = "recovery: run the silos as processes of the real host (src/Silo run) and SIGKILL one, instead of an in-process cluster." };
StateSettings StateOf(ParseResult r) => new(r.GetValue(stateMb), r.GetValue(storage)!, r.GetValue(valueBytes), r.GetValue(updateRate), r.GetValue(stateParallelism), r.GetValue(silos), r.GetValue(seed), r.GetValue(processes));

var mode = new Option<string>("--mode") { Description = "Checkpoint mode: incremental, or changelog (measures a changelog-mode job, then an incremental-mode job, same run).", DefaultValueFactory = _ => "incremental" };
var materialization = new Option<double>("--materialization-s") { Description = "Changelog mode: seconds between materializations of the changelog job.", DefaultValueFactory = _ => 60 };
var segmentInterval = new Option<double>("--segment-interval-ms") { Description = "Changelog mode: milliseconds after which the changelog job seals and uploads a segment with changes (CheckpointSettings.ChangelogSegmentInterval); 0 keeps the engine's default.", DefaultValueFactory = _ => 0 };
var checkpoints = new Option<int>("--checkpoints") { Description = "Measured checkpoints after the first (full) one; percentiles are nearest-rank, so p99 is the slowest one below 100 and the second slowest at 100 to 199.", DefaultValueFactory = _ => 100 };
var every = new Option<double>("--every-s") { Description = "Seconds between checkpoints (recovery: between the changelog job's two checkpoints).", DefaultValueFactory = _ => 5 };
var settle = new Option<double>("--settle-s") { Description = "Seconds of updates between the first (full) checkpoint and the measured ones, so the load's compactions do not land in them.", DefaultValueFactory = _ => 0 };
var eager = new Option<double>("--eager-upload-s") { Description = "Incremental mode: seconds between looks for new SST files to upload ahead of the checkpoints (CheckpointSettings.EagerUploadInterval); 0 turns eager uploads off.", DefaultValueFactory = _ => 1 };
TimeSpan? EagerOf(ParseResult r) => r.GetValue(eager) > 0 ? TimeSpan.FromSeconds(r.GetValue(eager)) : null;
TimeSpan? SegmentIntervalOf(ParseResult r) => r.GetValue(segmentInterval) != 0 ? TimeSpan.FromMilliseconds(r.GetValue(segmentInterval)) : null;
var checkpoint = new Command("checkpoint", "Checkpoints of a large keyed state under updates: incremental vs a raw copy of the full state to the same storage, or changelog vs incremental.") { mode, materialization, segmentInterval, stateMb, storage, valueBytes, updateRate, stateParallelism, silos, seed, checkpoints, every, settle, eager };
checkpoint.SetAction((r, ct) => CheckpointBenchmark.RunAsync(new CheckpointSettings(StateOf(r), r.GetValue(mode)!, r.GetValue(checkpoints), TimeSpan.FromSeconds(r.GetValue(every)), TimeSpan.FromSeconds(r.GetValue(materialization)), TimeSpan.FromSeconds(r.GetValue(settle)), EagerOf(r), SegmentIntervalOf(r)), ct));
root.Subcommands.Add(checkpoint);

var rounds = new Option<int>("--rounds") { Description = "Measured rounds; the summary reports medians (recovery --mode changelog: rounds of both modes, in alternating order).", DefaultValueFactory = _ => 3 };
var local = new Option<bool>("--local") { Description = "Fail user code with every silo alive and recover from local copies, instead of killing a silo and downloading." };
var copyRestore = new Option<bool>("--copy-restore") { Description = "Filesystem storage: copy stored SSTs on restore instead of hard-linking them." };
var coldCache = new Option<bool>("--cold-cache") { Description = "recovery: write back and drop the OS page cache before the failure and before the raw download, so both read storage cold (needs root on Linux; the summary says whether it happened)." };
var recovery = new Command("recovery", "Time from a failure to the first record processed after restore: incremental vs a raw download of the same bytes, or changelog vs incremental.") { mode, materialization, every, stateMb, storage, local, copyRestore, coldCache, valueBytes, updateRate, stateParallelism, silos, seed, settle, rounds, processes };
recovery.SetAction((r, ct) => RecoveryBenchmark.RunAsync(
    new RecoverySettings(StateOf(r), r.GetValue(local), r.GetValue(copyRestore), r.GetValue(mode)!, TimeSpan.FromSeconds(r.GetValue(every)), TimeSpan.FromSeconds(r.GetValue(materialization)), TimeSpan.FromSeconds(r.GetValue(settle)), r.GetValue(rounds), r.GetValue(coldCache)), ct));
root.Subcommands.Add(recovery);

var savepointMode = new Option<string>("--mode") { Description = "Checkpoint mode of the job: incremental or changelog.", DefaultValueFactory = _ => "incremental" };
var savepoint = new Command("savepoint", "Native savepoints of a large keyed state under updates vs a checkpoint and a raw copy of the full state, same run.") { stateMb, storage, valueBytes, updateRate, stateParallelism, silos, seed, rounds, every, savepointMode, materialization, settle, eager };
savepoint.SetAction((r, ct) => SavepointBenchmark.RunAsync(new SavepointSettings(StateOf(r), r.GetValue(rounds), TimeSpan.FromSeconds(r.GetValue(every)), r.GetValue(savepointMode)!, TimeSpan.FromSeconds(r.GetValue(materialization)), TimeSpan.FromSeconds(r.GetValue(settle)), EagerOf(r)), ct));
root.Subcommands.Add(savepoint);

var from = new Option<int>("--from") { Description = "Parallelism the savepoint is taken at.", DefaultValueFactory = _ => 2 };
var to = new Option<int>("--to") { Description = "Parallelism it is restored at.", DefaultValueFactory = _ => 4 };
var rescale = new Command("rescale", "Restore of a native savepoint at another parallelism vs at the same one, same run.") { stateMb, storage, valueBytes, updateRate, silos, seed, from, to, rounds, settle };
rescale.SetAction((r, ct) => RescaleBenchmark.RunAsync(new RescaleSettings(new StateSettings(r.GetValue(stateMb), r.GetValue(storage)!, r.GetValue(valueBytes), r.GetValue(updateRate), r.GetValue(from), r.GetValue(silos), r.GetValue(seed)), r.GetValue(from), r.GetValue(to), r.GetValue(rounds), TimeSpan.FromSeconds(r.GetValue(settle))), ct));
root.Subcommands.Add(rescale);

var canonicalStateMb = new Option<int>("--state-mb") { Description = "Keyed state to load, in MiB of values.", DefaultValueFactory = _ => 200 };
var canonicalParallelism = new Option<int>("--parallelism") { Description = "Subtasks that write the canonical files.", DefaultValueFactory = _ => 2 };
var restoreParallelism = new Option<int>("--restore-parallelism") { Description = "Subtasks that restore from them.", DefaultValueFactory = _ => 3 };
var canonical = new Command("canonical", "Canonical savepoint files: write from RocksDB checkpoints and restore at another parallelism, vs raw copies of the same entries.") { canonicalStateMb, valueBytes, canonicalParallelism, restoreParallelism, seed, runs };
canonical.SetAction((r, ct) => CanonicalSavepointBenchmark.RunAsync(new CanonicalSettings(r.GetValue(canonicalStateMb), r.GetValue(valueBytes), r.GetValue(canonicalParallelism), r.GetValue(restoreParallelism), r.GetValue(seed), r.GetValue(runs)), ct));
root.Subcommands.Add(canonical);

return await root.Parse(args).InvokeAsync();
