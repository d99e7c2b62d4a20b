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

    /// <summary>Reads a manifest; <paramref name="path"/> is only used in error messages.</summary>
    /// <exception cref="Serialization.StateFormatException">When the document is not a manifest this code can read.</exception>
    public static CheckpointManifest Deserialize(ReadOnlySpan<byte> json, string path)
    {
        CheckpointManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<CheckpointManifest>(json, Options);
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

        return manifest;
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
                        start = reader.GetInt32();
                        break;
                    case "end":
                        end = reader.GetInt32();
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
