using System.CommandLine;
using StreamGrains.Benchmarks.Backpressure;
using StreamGrains.Benchmarks.Checkpoints;
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
StateSettings StateOf(ParseResult r) => new(r.GetValue(stateMb), r.GetValue(storage)!, r.GetValue(valueBytes), r.GetValue(updateRate), r.GetValue(stateParallelism), r.GetValue(silos), r.GetValue(seed));

var mode = new Option<string>("--mode") { Description = "Checkpoint mode: incremental.", DefaultValueFactory = _ => "incremental" };
var checkpoints = new Option<int>("--checkpoints") { Description = "Measured checkpoints after the first (full) one.", DefaultValueFactory = _ => 10 };
var every = new Option<double>("--every-s") { Description = "Seconds between checkpoints.", DefaultValueFactory = _ => 5 };
var checkpoint = new Command("checkpoint", "Incremental checkpoints of a large keyed state under updates vs a raw copy of the full state to the same storage.") { mode, stateMb, storage, valueBytes, updateRate, stateParallelism, silos, seed, checkpoints, every };
checkpoint.SetAction((r, ct) => CheckpointBenchmark.RunAsync(new CheckpointSettings(StateOf(r), r.GetValue(mode)!, r.GetValue(checkpoints), TimeSpan.FromSeconds(r.GetValue(every))), ct));
root.Subcommands.Add(checkpoint);

var local = new Option<bool>("--local") { Description = "Fail user code with every silo alive and recover from local copies, instead of killing a silo and downloading." };
var copyRestore = new Option<bool>("--copy-restore") { Description = "Filesystem storage: copy stored SSTs on restore instead of hard-linking them." };
var recovery = new Command("recovery", "Time from a failure to the first record processed after restore vs a raw download of the same bytes.") { stateMb, storage, local, copyRestore, valueBytes, updateRate, stateParallelism, silos, seed };
recovery.SetAction((r, ct) => RecoveryBenchmark.RunAsync(new RecoverySettings(StateOf(r), r.GetValue(local), r.GetValue(copyRestore)), ct));
root.Subcommands.Add(recovery);

var rescaleMb = new Option<int>("--state-mb") { Description = "Keyed state to write, in MiB of values.", DefaultValueFactory = _ => 1000 };
var from = new Option<int>("--from") { Description = "Parallelism the state is written and checkpointed at.", DefaultValueFactory = _ => 2 };
var to = new Option<int>("--to") { Description = "Parallelism it is restored at.", DefaultValueFactory = _ => 3 };
var rescale = new Command("rescale", "Restore of checkpointed RocksDB state at another parallelism (clip + SST ingestion) vs at the same one, filesystem storage.") { rescaleMb, valueBytes, from, to, seed };
rescale.SetAction((r, ct) => RescaleBenchmark.RunAsync(new RescaleSettings(r.GetValue(rescaleMb), r.GetValue(valueBytes), r.GetValue(from), r.GetValue(to), r.GetValue(seed)), ct));
root.Subcommands.Add(rescale);

return await root.Parse(args).InvokeAsync();
