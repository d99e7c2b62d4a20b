using System.CommandLine;
using StreamGrains.Benchmarks.Backpressure;
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

return await root.Parse(args).InvokeAsync();
