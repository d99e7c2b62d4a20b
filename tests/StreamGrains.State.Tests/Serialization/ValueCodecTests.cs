using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using StreamGrains.State.Serialization;

namespace StreamGrains.State.Tests;

public sealed class ValueCodecTests
{
    [Fact]
    public void Values_round_trip_through_the_orleans_codec_behind_header_0xFF()
    {
        var points = new ValueCodec<Point>(null, TestEnvironment.Serializer);
        var numbers = new ValueCodec<long>(null, TestEnvironment.Serializer);
        var texts = new ValueCodec<string>(null, TestEnvironment.Serializer);
        var point = new Point { X = -17, Label = "corner" };

        var pointBytes = Encode(points, point);
        var numberBytes = Encode(numbers, long.MinValue);
        var textBytes = Encode(texts, "ünïcode");

        Assert.Equal(0xFF, pointBytes[0]);
        Assert.Equal(ValueCodec<Point>.OrleansFormat, pointBytes[0]);
        Assert.Equal(0xFF, numberBytes[0]);
        Assert.Equal(point, points.Read(pointBytes));
        Assert.Equal(long.MinValue, numbers.Read(numberBytes));
        Assert.Equal("ünïcode", texts.Read(textBytes));
    }

    [Fact]
    public void An_explicit_serializer_writes_its_version_as_header_and_reads_it_back()
    {
        var serializer = new PointSerializer(version: 2);
        var codec = new ValueCodec<Point>(serializer, TestEnvironment.Serializer);
        var point = new Point { X = 5, Label = "five" };

        var bytes = Encode(codec, point);
        var read = codec.Read(bytes);

        Assert.Equal(2, bytes[0]);
        Assert.Equal(point, read);
        Assert.Equal([2], serializer.ReadVersions);

        // The payload after the header is exactly what the explicit serializer wrote.
        Assert.Equal(5, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(1)));
        Assert.Equal("five", Encoding.UTF8.GetString(bytes.AsSpan(5)));
    }

    [Fact]
    public void A_newer_explicit_serializer_receives_the_version_that_wrote_the_value()
    {
        var v1 = new ValueCodec<Point>(new PointSerializer(version: 1), TestEnvironment.Serializer);
        var v2Serializer = new PointSerializer(version: 2);
        var v2 = new ValueCodec<Point>(v2Serializer, TestEnvironment.Serializer);

        var written = Encode(v1, new Point { X = 9, Label = "dropped by v1" });
        var read = v2.Read(written);

        Assert.Equal(1, written[0]);
        Assert.Equal([1], v2Serializer.ReadVersions);
        Assert.Equal(new Point { X = 9, Label = "(v1)" }, read);
    }

    [Fact]
    public void A_value_written_by_the_orleans_codec_is_still_readable_after_an_explicit_serializer_is_added()
    {
        var before = new ValueCodec<Point>(null, TestEnvironment.Serializer);
        var serializer = new PointSerializer(version: 3);
        var after = new ValueCodec<Point>(serializer, TestEnvironment.Serializer);
        var point = new Point { X = 1, Label = "old" };

        var read = after.Read(Encode(before, point));

        Assert.Equal(point, read);
        Assert.Empty(serializer.ReadVersions);
    }

    [Fact]
    public void A_value_written_by_an_explicit_serializer_is_refused_by_a_codec_without_one()
    {
        var withSerializer = new ValueCodec<Point>(new PointSerializer(version: 4), TestEnvironment.Serializer);
        var without = new ValueCodec<Point>(null, TestEnvironment.Serializer);
        var bytes = Encode(withSerializer, new Point { X = 1, Label = "x" });

        var error = Assert.Throws<StateFormatException>(() => without.Read(bytes));

        Assert.Contains("version 4", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Empty_input_is_refused()
    {
        Assert.Throws<StateFormatException>(() => new ValueCodec<Point>(null, TestEnvironment.Serializer).Read([]));
        Assert.Throws<StateFormatException>(() => new ValueCodec<Point>(new PointSerializer(1), TestEnvironment.Serializer).Read([]));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(128)]
    [InlineData(255)]
    public void Explicit_serializer_versions_outside_0_to_127_are_refused(int version) =>
        Assert.Throws<ArgumentException>(() => new ValueCodec<Point>(new PointSerializer(version), TestEnvironment.Serializer));

    [Theory]
    [InlineData(0)]
    [InlineData(127)]
    public void Explicit_serializer_versions_at_the_limits_are_accepted(int version)
    {
        var codec = new ValueCodec<Point>(new PointSerializer(version), TestEnvironment.Serializer);
        var point = new Point { X = version, Label = "edge" };

        var bytes = Encode(codec, point);

        Assert.Equal(version, bytes[0]);
        Assert.Equal(version, codec.Read(bytes).X);
    }

    internal static byte[] Encode<T>(ValueCodec<T> codec, T value)
    {
        var buffer = new ArrayBufferWriter<byte>();
        codec.Write(value, buffer);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Version 1 writes only X; version 2 and later write X then the label's UTF-8 bytes. Reading version 1 data
    /// yields the label "(v1)".
    /// </summary>
    private sealed class PointSerializer(int version) : IStateSerializer<Point>
    {
        public List<int> ReadVersions { get; } = [];

        public int Version => version;

        public void Serialize(Point value, IBufferWriter<byte> output)
        {
            BinaryPrimitives.WriteInt32LittleEndian(output.GetSpan(4), value.X);
            output.Advance(4);
            if (version >= 2)
            {
                Encoding.UTF8.GetBytes(value.Label, output);
            }
        }

        public Point Deserialize(ReadOnlySpan<byte> data, int writtenVersion)
        {
            ReadVersions.Add(writtenVersion);
            var x = BinaryPrimitives.ReadInt32LittleEndian(data);
            return new Point { X = x, Label = writtenVersion >= 2 ? Encoding.UTF8.GetString(data[4..]) : "(v1)" };
        }
    }
}
