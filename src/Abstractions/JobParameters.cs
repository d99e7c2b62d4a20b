using System.Globalization;

namespace StreamGrains;

/// <summary>
/// Named string parameters passed to <see cref="IStreamJob.Build"/>, with typed accessors.
/// </summary>
[GenerateSerializer, Immutable]
public sealed class JobParameters
{
    /// <summary>No parameters.</summary>
    public static readonly JobParameters Empty = new(new Dictionary<string, string>());

    [Id(0)] private readonly Dictionary<string, string> _values;

    /// <summary>Creates parameters from name/value pairs (names are case-sensitive).</summary>
    public JobParameters(IEnumerable<KeyValuePair<string, string>> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        _values = new Dictionary<string, string>(values, StringComparer.Ordinal);
    }

    /// <summary>All parameters.</summary>
    public IReadOnlyDictionary<string, string> Values => _values;

    /// <summary>The value of <paramref name="name"/>, or <paramref name="defaultValue"/> when it is not set.</summary>
    public string GetString(string name, string defaultValue) => _values.TryGetValue(name, out var v) ? v : defaultValue;

    /// <summary>The value of <paramref name="name"/> as a 64-bit integer, or <paramref name="defaultValue"/> when it is not set.</summary>
    /// <exception cref="FormatException">When the parameter is set but is not an integer.</exception>
    public long GetInt64(string name, long defaultValue) => Parse(name, defaultValue, static s => long.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture));

    /// <summary>The value of <paramref name="name"/> as a 32-bit integer, or <paramref name="defaultValue"/> when it is not set.</summary>
    /// <exception cref="FormatException">When the parameter is set but is not an integer.</exception>
    public int GetInt32(string name, int defaultValue) => Parse(name, defaultValue, static s => int.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture));

    /// <summary>The value of <paramref name="name"/> as a number, or <paramref name="defaultValue"/> when it is not set.</summary>
    /// <exception cref="FormatException">When the parameter is set but is not a number.</exception>
    public double GetDouble(string name, double defaultValue) => Parse(name, defaultValue, static s => double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture));

    /// <summary>The value of <paramref name="name"/> as a boolean, or <paramref name="defaultValue"/> when it is not set.</summary>
    /// <exception cref="FormatException">When the parameter is set but is not true or false.</exception>
    public bool GetBoolean(string name, bool defaultValue) => Parse(name, defaultValue, bool.Parse);

    /// <summary>Returns a copy with <paramref name="name"/> set to <paramref name="value"/>.</summary>
    public JobParameters With(string name, string value)
    {
        var copy = new Dictionary<string, string>(_values, StringComparer.Ordinal) { [name] = value };
        return new JobParameters(copy);
    }

    /// <summary>Returns a copy with <paramref name="name"/> set to <paramref name="value"/>.</summary>
    public JobParameters With(string name, long value) => With(name, value.ToString(CultureInfo.InvariantCulture));

    private T Parse<T>(string name, T defaultValue, Func<string, T> parse)
    {
        if (!_values.TryGetValue(name, out var text))
        {
            return defaultValue;
        }

        try
        {
            return parse(text);
        }
        catch (FormatException ex)
        {
            throw new FormatException($"Job parameter '{name}' has value '{text}', which is not a valid {typeof(T).Name}.", ex);
        }
        catch (OverflowException ex)
        {
            throw new FormatException($"Job parameter '{name}' has value '{text}', which is out of range for {typeof(T).Name}.", ex);
        }
    }

    /// <inheritdoc />
    public override string ToString() => string.Join(", ", _values.OrderBy(static p => p.Key, StringComparer.Ordinal).Select(static p => $"{p.Key}={p.Value}"));
}
