using System.CommandLine;
using StreamGrains.Silo;

var root = new RootCommand("StreamGrains silo host.");

var configOption = new Option<FileInfo?>("--config") { Description = "A JSON settings file to use instead of appsettings.json." };
var run = new Command("run", "Host a silo configured by appsettings.json (section Cluster and StreamGrains) until stopped.") { configOption };
run.SetAction((result, cancellationToken) => RunCommand.RunAsync(result.GetValue(configOption), cancellationToken));
root.Subcommands.Add(run);

var events = new Option<long>("--events") { Description = "Number of generated clicks.", DefaultValueFactory = _ => 2_000_000 };
var keys = new Option<long>("--keys") { Description = "Number of distinct users.", DefaultValueFactory = _ => 50_000 };
var parallelism = new Option<int>("--parallelism") { Description = "Parallelism of the job.", DefaultValueFactory = _ => 2 };
var seed = new Option<long>("--seed") { Description = "Seed of the generator.", DefaultValueFactory = _ => 42 };
var demo = new Command("demo", "Start an in-process silo, run the click-count sample job and check every key's count.") { events, keys, parallelism, seed };
demo.SetAction((result, cancellationToken) => DemoCommand.RunAsync(
    new DemoSettings(result.GetValue(events), result.GetValue(keys), result.GetValue(parallelism), result.GetValue(seed)),
    cancellationToken));
root.Subcommands.Add(demo);

return await root.Parse(args).InvokeAsync();
