using System.Globalization;
using StreamGrains.Snapshots;

namespace StreamGrains.State.Snapshots;

/// <summary>
/// Checks a parsed manifest semantically (docs/formats.md): required fields are set, ids and sizes are not negative,
/// every key-group range lies in <c>[0, maxParallelism)</c>, the keyed state of one operator covers every key group
/// exactly once, and file handles have plain names and relative paths.
/// </summary>
public static class ManifestValidator
{
    /// <summary>Throws when <paramref name="manifest"/> (read from <paramref name="path"/>) describes no snapshot that could exist.</summary>
    /// <exception cref="CorruptManifestException">Names the first offending field.</exception>
    public static void Validate(CheckpointManifest manifest, string path)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        var check = new Checker(path, manifest.MaxParallelism);
        check.NotBlank(manifest.JobId, "jobId");
        check.NotBlank(manifest.JobType, "jobType");
        check.NotNegative(manifest.CheckpointId, "checkpointId");
        check.NotNegative(manifest.Attempt, "attempt");
        check.Defined(manifest.Kind, "kind");
        check.Defined(manifest.Format, "format");
        if (manifest.MaxParallelism < 1 || manifest.MaxParallelism > KeyGroups.UpperBound)
        {
            throw check.Corrupt("maxParallelism", $"is {manifest.MaxParallelism}; it lies in [1, {KeyGroups.UpperBound}]");
        }

        check.NotNull(manifest.Operators, "operators");
        var uids = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < manifest.Operators.Count; i++)
        {
            var field = $"operators[{i}]";
            var state = check.NotNull(manifest.Operators[i], field);
            check.NotBlank(state.Uid, $"{field}.uid");
            if (!uids.Add(state.Uid))
            {
                throw check.Corrupt($"{field}.uid", $"'{state.Uid}' appears twice; an operator's state is listed once");
            }

            ValidateOperator(check, state, field);
        }
    }

    private static void ValidateOperator(Checker check, OperatorState state, string field)
    {
        if (state.Parallelism < 1 || state.Parallelism > check.MaxParallelism)
        {
            throw check.Corrupt($"{field}.parallelism", $"is {state.Parallelism}; it lies in [1, maxParallelism {check.MaxParallelism}]");
        }

        check.NotNull(state.Subtasks, $"{field}.subtasks");
        var indexes = new HashSet<int>();
        var keyed = new List<(KeyGroupRange Range, string Field)>();
        for (var j = 0; j < state.Subtasks.Count; j++)
        {
            var subtaskField = $"{field}.subtasks[{j}]";
            var subtask = check.NotNull(state.Subtasks[j], subtaskField);
            if (subtask.SubtaskIndex < 0 || subtask.SubtaskIndex >= state.Parallelism)
            {
                throw check.Corrupt($"{subtaskField}.subtaskIndex", $"is {subtask.SubtaskIndex}; it lies in [0, parallelism {state.Parallelism})");
            }

            if (!indexes.Add(subtask.SubtaskIndex))
            {
                throw check.Corrupt($"{subtaskField}.subtaskIndex", $"{subtask.SubtaskIndex} appears twice in the operator");
            }

            check.NotNegative(subtask.RecordsRead ?? 0, $"{subtaskField}.recordsRead");
            if (subtask.SourceSplits is { } splits)
            {
                for (var k = 0; k < splits.Count; k++)
                {
                    check.NotNull(check.NotNull(splits[k], $"{subtaskField}.sourceSplits[{k}]").Id, $"{subtaskField}.sourceSplits[{k}].id");
                }
            }

            if (subtask.KeyedState is { } handle)
            {
                keyed.Add((check.OwnedRange(handle.KeyGroups, $"{subtaskField}.keyedState.keyGroups"), $"{subtaskField}.keyedState.keyGroups"));
                check.NotNull(handle.Files, $"{subtaskField}.keyedState.files");
                check.NotNegative(handle.MaterializationId ?? 0, $"{subtaskField}.keyedState.materializationId");
                for (var k = 0; k < handle.Files.Count; k++)
                {
                    check.File(handle.Files[k], $"{subtaskField}.keyedState.files[{k}]");
                }

                for (var k = 0; k < (handle.Changelog?.Count ?? 0); k++)
                {
                    check.File(handle.Changelog![k], $"{subtaskField}.keyedState.changelog[{k}]");
                }
            }

            if (subtask.CanonicalState is { } canonical)
            {
                keyed.Add((check.OwnedRange(canonical.KeyGroups, $"{subtaskField}.canonicalState.keyGroups"), $"{subtaskField}.canonicalState.keyGroups"));
                check.File(canonical.File, $"{subtaskField}.canonicalState.file");
            }
        }

        ValidateCoverage(check, keyed, field);
    }

    /// <summary>The keyed state of one operator covers every key group of the job exactly once.</summary>
    private static void ValidateCoverage(Checker check, List<(KeyGroupRange Range, string Field)> keyed, string field)
    {
        if (keyed.Count == 0)
        {
            return;
        }

        var next = 0;
        foreach (var (range, rangeField) in keyed.OrderBy(static k => k.Range.Start))
        {
            if (range.Start < next)
            {
                throw check.Corrupt(rangeField, $"{range} overlaps the key groups of another subtask of the operator");
            }

            if (range.Start > next)
            {
                throw check.Corrupt(field, $"has keyed state but key groups [{next}, {range.Start - 1}] are in no subtask's state");
            }

            next = range.EndExclusive;
        }

        if (next < check.MaxParallelism)
        {
            throw check.Corrupt(field, $"has keyed state but key groups [{next}, {check.MaxParallelism - 1}] are in no subtask's state");
        }
    }

    private sealed class Checker(string path, int maxParallelism)
    {
        public int MaxParallelism => maxParallelism;

        public CorruptManifestException Corrupt(string field, string reason) => new(path, field, reason);

        public T NotNull<T>(T? value, string field)
            where T : class => value ?? throw Corrupt(field, "is null");

        public void NotBlank(string? value, string field)
        {
            if (string.IsNullOrWhiteSpace(value))
            {
                throw Corrupt(field, value is null ? "is null" : "is empty");
            }
        }

        public void NotNegative(long value, string field)
        {
            if (value < 0)
            {
                throw Corrupt(field, string.Create(CultureInfo.InvariantCulture, $"is {value}; it is never negative"));
            }
        }

        public void Defined<TEnum>(TEnum value, string field)
            where TEnum : struct, Enum
        {
            if (!Enum.IsDefined(value))
            {
                throw Corrupt(field, $"is {value}, which is no {typeof(TEnum).Name}");
            }
        }

        /// <summary>A subtask's key groups: not empty and within the job's.</summary>
        public KeyGroupRange OwnedRange(KeyGroupRange range, string field)
        {
            if (range.IsEmpty)
            {
                throw Corrupt(field, "is empty; keyed state covers at least one key group");
            }

            if (range.End >= maxParallelism)
            {
                throw Corrupt($"{field}.end", $"is {range.End}; key groups lie in [0, {maxParallelism}) (max parallelism {maxParallelism})");
            }

            return range;
        }

        /// <summary>A file handle: a plain name, a relative path without empty or dot segments, a sane length and checksum.</summary>
        public void File(StateFile? file, string field)
        {
            NotNull(file, field);
            NotBlank(file!.Name, $"{field}.name");
            if (file.Name.Contains('/', StringComparison.Ordinal) || file.Name.Contains('\\', StringComparison.Ordinal) || file.Name is "." or "..")
            {
                throw Corrupt($"{field}.name", $"is '{file.Name}'; a file name has no directory part");
            }

            NotBlank(file.Path, $"{field}.path");
            if (file.Path.Contains('\\', StringComparison.Ordinal) || file.Path.Split('/').Any(static s => s is "" or "." or ".."))
            {
                throw Corrupt($"{field}.path", $"is '{file.Path}'; a path in storage is relative, with '/' between non-empty segments and no '.' or '..'");
            }

            NotNegative(file.Length, $"{field}.length");
            if (file.Checksum is { } checksum && (checksum.Length != 16 || !checksum.All(char.IsAsciiHexDigit)))
            {
                throw Corrupt($"{field}.checksum", $"is '{checksum}'; a checksum is 16 hex digits");
            }

            if (file.Sst is { } sst)
            {
                NotBlank(sst.ColumnFamily, $"{field}.sst.columnFamily");
                NotNegative(sst.Level, $"{field}.sst.level");
                NotNegative(sst.SmallestSeqno, $"{field}.sst.smallestSeqno");
                NotNegative(sst.LargestSeqno, $"{field}.sst.largestSeqno");

                // An SST's key groups are those of its smallest and largest key, which may lie beyond the job's (a range
                // deletion that reaches the end of the key space ends at key group 32767), so only their form is checked
                // (by the reader: not negative, end not before start).
            }
        }
    }
}
