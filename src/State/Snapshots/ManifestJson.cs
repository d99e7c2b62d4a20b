using System.Text.Json;
using System.Text.Json.Serialization;
using StreamGrains.Snapshots;

namespace StreamGrains.State.Snapshots;

/// <summary>Reads and writes manifests as JSON (see docs/formats.md).</summary>
public static class ManifestJson
{
    private static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new KeyGroupRangeConverter() },
    };

    /// <summary>The manifest as UTF-8 JSON.</summary>
    public static byte[] Serialize(CheckpointManifest manifest) => JsonSerializer.SerializeToUtf8Bytes(manifest, Options);

    /// <summary>Reads a manifest and checks it (<see cref="ManifestValidator"/>); <paramref name="path"/> is only used in error messages.</summary>
    /// <exception cref="Serialization.StateFormatException">When the document is not a manifest this code can read.</exception>
    /// <exception cref="CorruptManifestException">When it is one but describes no snapshot that could exist (a subclass of the above).</exception>
    public static CheckpointManifest Deserialize(ReadOnlySpan<byte> json, string path)
    {
        CheckpointManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<CheckpointManifest>(json, Options);
        }
        catch (InvalidKeyGroupRangeException ex)
        {
            throw new CorruptManifestException(path, $"{FieldOf(ex.Path)}.{ex.Field}", ex.Message);
        }
        catch (JsonException ex)
        {
            throw new Serialization.StateFormatException($"Manifest '{path}' is not valid: {ex.Message}", ex);
        }

        if (manifest is null)
        {
            throw new Serialization.StateFormatException($"Manifest '{path}' is empty.");
        }

        if (manifest.FormatVersion < 1 || manifest.FormatVersion > CheckpointManifest.CurrentFormatVersion)
        {
            throw new Serialization.StateFormatException($"Manifest '{path}' has format version {manifest.FormatVersion}; this version of StreamGrains reads versions 1 to {CheckpointManifest.CurrentFormatVersion}.");
        }

        ManifestValidator.Validate(manifest, path);
        return manifest;
    }

    /// <summary>A JSON path as System.Text.Json reports it (<c>$.operators[1].keyGroups</c>) without its root.</summary>
    private static string FieldOf(string? jsonPath) => jsonPath is null ? "?" : jsonPath.StartsWith("$.", StringComparison.Ordinal) ? jsonPath[2..] : jsonPath;

    /// <summary>A key-group range whose numbers no range has; carries the field (<c>start</c> or <c>end</c>).</summary>
    private sealed class InvalidKeyGroupRangeException(string field, string message) : JsonException(message)
    {
        public string Field { get; } = field;
    }

    /// <summary>Writes a key-group range as <c>{"start": s, "end": e}</c> (inclusive end).</summary>
    private sealed class KeyGroupRangeConverter : JsonConverter<KeyGroupRange>
    {
        public override KeyGroupRange Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                throw new JsonException("A key-group range must be an object with start and end.");
            }

            int? start = null;
            int? end = null;
            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                var name = reader.GetString();
                reader.Read();
                switch (name)
                {
                    case "start":
                        start = reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var s) ? s : throw new JsonException("A key-group range's start must be a 32-bit integer.");
                        break;
                    case "end":
                        end = reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var e) ? e : throw new JsonException("A key-group range's end must be a 32-bit integer.");
                        break;
                    default:
                        reader.Skip();
                        break;
                }
            }

            if (start is null || end is null)
            {
                throw new JsonException("A key-group range needs start and end.");
            }

            // An empty range is written as end = start - 1 (the empty default as { start: 0, end: -1 }).
            if (start < 0)
            {
                throw new InvalidKeyGroupRangeException("start", $"is {start}; a key group is never negative");
            }

            if (end < start - 1 || end == int.MaxValue)
            {
                throw new InvalidKeyGroupRangeException("end", end < start ? $"is {end}, before the start {start}" : $"is {end}; no key group is that large");
            }

            return end < start ? KeyGroupRange.Empty : new KeyGroupRange(start.Value, end.Value);
        }

        public override void Write(Utf8JsonWriter writer, KeyGroupRange value, JsonSerializerOptions options)
        {
            writer.WriteStartObject();
            writer.WriteNumber("start", value.Start);
            writer.WriteNumber("end", value.End);
            writer.WriteEndObject();
        }
    }
}
