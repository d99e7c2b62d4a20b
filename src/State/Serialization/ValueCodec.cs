using System.Buffers;

namespace StreamGrains.State.Serialization;

/// <summary>
/// Encodes state values with a one-byte header that says which format wrote them.
/// </summary>
/// <remarks>
/// Header <see cref="OrleansFormat"/> (0xFF): Orleans' version-tolerant codec follows. Header <c>0..127</c>: an explicit
/// <see cref="IStateSerializer{T}"/> of that version follows. The header lets a value written by one format be read
/// after the descriptor switched to the other, as long as the old one can still read it.
/// </remarks>
public sealed class ValueCodec<T>
{
    /// <summary>Header byte of values written by Orleans' codec.</summary>
    public const byte OrleansFormat = 0xFF;

    private readonly IStateSerializer<T>? _explicit;
    private readonly Orleans.Serialization.Serializer<T> _orleans;

    /// <summary>Creates the codec.</summary>
    public ValueCodec(IStateSerializer<T>? explicitSerializer, Orleans.Serialization.Serializer serializer)
    {
        ArgumentNullException.ThrowIfNull(serializer);
        if (explicitSerializer is { Version: < 0 or > 127 })
        {
            throw new ArgumentException($"State serializer {explicitSerializer.GetType().Name} has version {explicitSerializer.Version}; versions must be between 0 and 127.", nameof(explicitSerializer));
        }

        _explicit = explicitSerializer;
        _orleans = serializer.GetSerializer<T>();
    }

    /// <summary>Writes the header and the value.</summary>
    public void Write(T value, IBufferWriter<byte> output)
    {
        if (_explicit is { } s)
        {
            output.GetSpan(1)[0] = (byte)s.Version;
            output.Advance(1);
            s.Serialize(value, output);
        }
        else
        {
            output.GetSpan(1)[0] = OrleansFormat;
            output.Advance(1);
            _orleans.Serialize(value, output);
        }
    }

    /// <summary>Reads a value written by <see cref="Write"/>.</summary>
    /// <exception cref="StateFormatException">When the value is empty or was written by a format this codec cannot read.</exception>
    public T Read(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            throw new StateFormatException($"An encoded {typeof(T).Name} value is empty.");
        }

        var header = data[0];
        if (header == OrleansFormat)
        {
            return _orleans.Deserialize(data[1..])!;
        }

        if (_explicit is null)
        {
            throw new StateFormatException($"A {typeof(T).Name} value was written by an explicit state serializer (version {header}), but the state descriptor now has none; give the descriptor that serializer again.");
        }

        return _explicit.Deserialize(data[1..], header);
    }
}
