using System.Buffers;

namespace StreamGrains.State.Serialization;

/// <summary>Unsigned LEB128 variable-length integers, used for length prefixes in keys and lists.</summary>
internal static class VarInt
{
    public const int MaxLength32 = 5;

    public static int Write(Span<byte> destination, uint value)
    {
        var i = 0;
        while (value >= 0x80)
        {
            destination[i++] = (byte)(value | 0x80);
            value >>= 7;
        }

        destination[i++] = (byte)value;
        return i;
    }

    public static void Write(IBufferWriter<byte> output, uint value)
    {
        var span = output.GetSpan(MaxLength32);
        output.Advance(Write(span, value));
    }

    public static uint Read(ReadOnlySpan<byte> source, out int bytesRead)
    {
        uint result = 0;
        var shift = 0;
        for (var i = 0; i < MaxLength32; i++)
        {
            if (i >= source.Length)
            {
                throw new FormatException("Truncated variable-length integer.");
            }

            var b = source[i];
            result |= (uint)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                bytesRead = i + 1;
                return result;
            }

            shift += 7;
        }

        throw new FormatException("Variable-length integer is longer than 5 bytes.");
    }
}
