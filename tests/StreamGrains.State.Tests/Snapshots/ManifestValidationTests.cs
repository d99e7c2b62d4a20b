using System.Text.Json.Nodes;
using StreamGrains.Connectors;
using StreamGrains.Snapshots;
using StreamGrains.State.Serialization;
using StreamGrains.State.Snapshots;

namespace StreamGrains.State.Tests.Snapshots;

public sealed class ManifestValidationTests
{
    private const string Path = "job-v/chk-9/_manifest.json";

    /// <summary>Each corruption of a valid manifest (by its JSON) and the field the error names.</summary>
    public static TheoryData<string, string, string> Corruptions => new()
    {
        { "negative key-group start", "operators[1].subtasks[0].keyedState.keyGroups.start", "$.operators[1].subtasks[0].keyedState.keyGroups.start=-1" },
        { "end before start", "operators[1].subtasks[1].keyedState.keyGroups.end", "$.operators[1].subtasks[1].keyedState.keyGroups.end=3" },
        { "end beyond max parallelism", "operators[1].subtasks[1].keyedState.keyGroups.end", "$.operators[1].subtasks[1].keyedState.keyGroups.end=200" },
        { "overlapping ranges", "operators[1].subtasks[1].keyedState.keyGroups", "$.operators[1].subtasks[1].keyedState.keyGroups.start=60" },
        { "key groups no subtask covers", "operators[1]", "$.operators[1].subtasks[1].keyedState.keyGroups.start=70" },
        { "a subtask missing from keyed state", "operators[1]", "$.operators[1].subtasks[1]=remove" },
        { "empty keyed range", "operators[1].subtasks[0].keyedState.keyGroups", "$.operators[1].subtasks[0].keyedState.keyGroups.end=-1" },
        { "canonical range beyond max parallelism", "operators[2].subtasks[0].canonicalState.keyGroups.end", "$.operators[2].subtasks[0].canonicalState.keyGroups.end=128" },
        { "null job id", "jobId", "$.jobId=null" },
        { "null job type", "jobType", "$.jobType=null" },
        { "null operators", "operators", "$.operators=null" },
        { "null operator", "operators[0]", "$.operators[0]=null" },
        { "null uid", "operators[0].uid", "$.operators[0].uid=null" },
        { "duplicate uid", "operators[1].uid", "$.operators[1].uid=\"clicks\"" },
        { "null subtasks", "operators[1].subtasks", "$.operators[1].subtasks=null" },
        { "null subtask", "operators[0].subtasks[1]", "$.operators[0].subtasks[1]=null" },
        { "null files", "operators[1].subtasks[0].keyedState.files", "$.operators[1].subtasks[0].keyedState.files=null" },
        { "null file", "operators[1].subtasks[0].keyedState.files[1]", "$.operators[1].subtasks[0].keyedState.files[1]=null" },
        { "null file name", "operators[1].subtasks[0].keyedState.files[0].name", "$.operators[1].subtasks[0].keyedState.files[0].name=null" },
        { "file name with a directory", "operators[1].subtasks[0].keyedState.files[0].name", "$.operators[1].subtasks[0].keyedState.files[0].name=\"../000012.sst\"" },
        { "null file path", "operators[1].subtasks[0].keyedState.files[0].path", "$.operators[1].subtasks[0].keyedState.files[0].path=null" },
        { "file path escaping the root", "operators[1].subtasks[0].keyedState.files[0].path", "$.operators[1].subtasks[0].keyedState.files[0].path=\"job-v/../../etc/passwd\"" },
        { "absolute file path", "operators[1].subtasks[0].keyedState.files[0].path", "$.operators[1].subtasks[0].keyedState.files[0].path=\"/etc/passwd\"" },
        { "negative file length", "operators[1].subtasks[0].keyedState.files[0].length", "$.operators[1].subtasks[0].keyedState.files[0].length=-5" },
        { "malformed checksum", "operators[1].subtasks[0].keyedState.files[0].checksum", "$.operators[1].subtasks[0].keyedState.files[0].checksum=\"xyz\"" },
        { "null column family", "operators[1].subtasks[0].keyedState.files[0].sst.columnFamily", "$.operators[1].subtasks[0].keyedState.files[0].sst.columnFamily=null" },
        { "negative level", "operators[1].subtasks[0].keyedState.files[0].sst.level", "$.operators[1].subtasks[0].keyedState.files[0].sst.level=-1" },
        { "null changelog segment", "operators[1].subtasks[1].keyedState.changelog[0]", "$.operators[1].subtasks[1].keyedState.changelog[0]=null" },
        { "negative materialization id", "operators[1].subtasks[1].keyedState.materializationId", "$.operators[1].subtasks[1].keyedState.materializationId=-2" },
        { "negative checkpoint id", "checkpointId", "$.checkpointId=-9" },
        { "negative attempt", "attempt", "$.attempt=-1" },
        { "zero max parallelism", "maxParallelism", "$.maxParallelism=0" },
        { "parallelism above max parallelism", "operators[0].parallelism", "$.operators[0].parallelism=129" },
        { "negative subtask index", "operators[0].subtasks[0].subtaskIndex", "$.operators[0].subtasks[0].subtaskIndex=-1" },
        { "subtask index beyond parallelism", "operators[0].subtasks[1].subtaskIndex", "$.operators[0].subtasks[1].subtaskIndex=2" },
        { "duplicate subtask index", "operators[0].subtasks[1].subtaskIndex", "$.operators[0].subtasks[1].subtaskIndex=0" },
        { "null split id", "operators[0].subtasks[0].sourceSplits[0].id", "$.operators[0].subtasks[0].sourceSplits[0].id=null" },
        { "unknown kind", "kind", "$.kind=7" },
    };

    [Fact]
    public void A_valid_manifest_round_trips()
    {
        var manifest = ManifestJson.Deserialize(ManifestJson.Serialize(Valid()), Path);

        Assert.Equal(Valid().Operators.Count, manifest.Operators.Count);
        Assert.Equal(new KeyGroupRange(64, 127), manifest.Operators[1].Subtasks[1].KeyedState!.KeyGroups);
    }

    [Fact]
    public void An_empty_range_written_as_the_default_reads_back_empty()
    {
        var json = JsonNode.Parse(ManifestJson.Serialize(Valid()))!;
        json["operators"]![1]!["subtasks"]![0]!["keyedState"]!["files"]![0]!["sst"]!["keyGroups"] = new JsonObject { ["start"] = 0, ["end"] = -1 };

        var manifest = ManifestJson.Deserialize(System.Text.Encoding.UTF8.GetBytes(json.ToJsonString()), Path);

        Assert.True(manifest.Operators[1].Subtasks[0].KeyedState!.Files[0].Sst!.KeyGroups.IsEmpty);
    }

    [Fact]
    public void An_sst_whose_keys_reach_beyond_the_jobs_key_groups_is_valid()
    {
        // A range deletion to the end of the key space ends at key group 32767 (seen in a savepoint of a timer job).
        var json = JsonNode.Parse(ManifestJson.Serialize(Valid()))!;
        json["operators"]![1]!["subtasks"]![0]!["keyedState"]!["files"]![0]!["sst"]!["keyGroups"] = new JsonObject { ["start"] = 0, ["end"] = 32767 };

        var manifest = ManifestJson.Deserialize(System.Text.Encoding.UTF8.GetBytes(json.ToJsonString()), Path);

        Assert.Equal(32767, manifest.Operators[1].Subtasks[0].KeyedState!.Files[0].Sst!.KeyGroups.End);
    }

    [Theory]
    [MemberData(nameof(Corruptions))]
    public void A_manifest_that_describes_no_possible_snapshot_is_corrupt_and_the_error_names_the_field(string what, string field, string edit)
    {
        var bytes = Edit(ManifestJson.Serialize(Valid()), edit);

        var error = Assert.Throws<CorruptManifestException>(() => ManifestJson.Deserialize(bytes, Path));

        Assert.True(error.Field == field, $"{what}: expected field {field}, got {error.Field} ({error.Message})");
        Assert.Equal(Path, error.ManifestPath);
        Assert.Contains(Path, error.Message, StringComparison.Ordinal);
        Assert.Contains(field, error.Message, StringComparison.Ordinal);
        Assert.IsAssignableFrom<StateFormatException>(error);
    }

    [Fact]
    public void A_document_that_is_no_manifest_still_fails_as_a_format_error()
    {
        var error = Assert.Throws<StateFormatException>(() => ManifestJson.Deserialize("{\"formatVersion\": 3, \"operators\": ["u8, Path));

        Assert.IsNotType<CorruptManifestException>(error);
        Assert.Contains(Path, error.Message, StringComparison.Ordinal);
    }

    /// <summary>Applies <c>$.a.b[1].c=value</c> (a JSON value, or <c>remove</c> for an array element) to the document.</summary>
    private static byte[] Edit(byte[] json, string edit)
    {
        var root = JsonNode.Parse(json)!;
        var (path, value) = (edit[..edit.IndexOf('=', StringComparison.Ordinal)], edit[(edit.IndexOf('=', StringComparison.Ordinal) + 1)..]);
        var steps = path[2..].Replace("[", ".[", StringComparison.Ordinal).Split('.');
        JsonNode parent = root;
        for (var i = 0; i < steps.Length - 1; i++)
        {
            parent = Step(parent, steps[i])!;
        }

        var last = steps[^1];
        if (last.StartsWith('['))
        {
            var array = parent.AsArray();
            var index = int.Parse(last[1..^1], System.Globalization.CultureInfo.InvariantCulture);
            if (value == "remove")
            {
                array.RemoveAt(index);
            }
            else
            {
                array[index] = JsonNode.Parse(value);
            }
        }
        else
        {
            parent.AsObject()[last] = JsonNode.Parse(value);
        }

        return System.Text.Encoding.UTF8.GetBytes(root.ToJsonString());

        static JsonNode? Step(JsonNode node, string step) =>
            step.StartsWith('[') ? node.AsArray()[int.Parse(step[1..^1], System.Globalization.CultureInfo.InvariantCulture)] : node.AsObject()[step];
    }

    /// <summary>A checkpoint of a source (parallelism 2), a keyed operator (2 subtasks, the second in changelog mode) and a canonical one, max parallelism 128.</summary>
    private static CheckpointManifest Valid() => new()
    {
        JobId = "job-v",
        JobType = "Tests.Job",
        CheckpointId = 9,
        Attempt = 2,
        MaxParallelism = 128,
        Operators =
        [
            new OperatorState
            {
                Uid = "clicks",
                Parallelism = 2,
                Subtasks = [new OperatorSubtaskState { SubtaskIndex = 0, SourceSplits = [new SourceSplit("gen-0", 15)] }, new OperatorSubtaskState { SubtaskIndex = 1, SourceSplits = [new SourceSplit("gen-1", 16)] }],
            },
            new OperatorState
            {
                Uid = "counts",
                Parallelism = 2,
                Subtasks =
                [
                    new OperatorSubtaskState
                    {
                        SubtaskIndex = 0,
                        KeyedState = new KeyedStateHandle
                        {
                            KeyGroups = new KeyGroupRange(0, 63),
                            Files =
                            [
                                new StateFile { Name = "000012.sst", Path = "job-v/shared/counts/0-a.sst", Length = 1843, Checksum = "8b1f0c2a9e4d7733", Shared = true, Sst = new SstFileInfo { ColumnFamily = "count", Level = 6, KeyGroups = new KeyGroupRange(0, 31) } },
                                new StateFile { Name = "MANIFEST-000005", Path = "job-v/chk-9/counts/0/MANIFEST-000005", Length = 116 },
                            ],
                        },
                    },
                    new OperatorSubtaskState
                    {
                        SubtaskIndex = 1,
                        KeyedState = new KeyedStateHandle
                        {
                            KeyGroups = new KeyGroupRange(64, 127),
                            Files = [new StateFile { Name = "CURRENT", Path = "job-v/changelog/counts/1/m-3/CURRENT", Length = 16 }],
                            MaterializationId = 3,
                            Changelog = [new StateFile { Name = "41.log", Path = "job-v/changelog/counts/1/41.log", Length = 900, Shared = true }],
                        },
                    },
                ],
            },
            new OperatorState
            {
                Uid = "windows",
                Parallelism = 1,
                Subtasks = [new OperatorSubtaskState { SubtaskIndex = 0, CanonicalState = new CanonicalStateHandle { KeyGroups = new KeyGroupRange(0, 127), File = new StateFile { Name = "state.bin", Path = "job-v/chk-9/windows/0/state.bin", Length = 12 } } }],
            },
        ],
    };
}
