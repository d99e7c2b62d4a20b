using System.Diagnostics.CodeAnalysis;

namespace StreamGrains;

/// <summary>Identifies a job for its whole life, across attempts.</summary>
/// <remarks>
/// A job id is 1–64 characters of ASCII letters, digits, '-', '_' and '.', so that it can be used in grain keys and
/// storage paths unescaped.
/// </remarks>
[GenerateSerializer, Immutable]
public readonly record struct JobId
{
    /// <summary>Creates a job id, validating its characters.</summary>
    /// <exception cref="ArgumentException">When <paramref name="value"/> is not a valid job id.</exception>
    public JobId(string value)
    {
        if (!IsValid(value, out var reason))
        {
            throw new ArgumentException($"'{value}' is not a valid job id: {reason}", nameof(value));
        }

        Value = value;
    }

    /// <summary>The id's text.</summary>
    [Id(0)] public string Value { get; }

    /// <summary>A new random job id.</summary>
    public static JobId New() => new($"job-{Guid.NewGuid():N}"[..20]);

    /// <summary>Checks whether <paramref name="value"/> can be used as a job id.</summary>
    public static bool IsValid([NotNullWhen(true)] string? value, [NotNullWhen(false)] out string? reason)
    {
        if (string.IsNullOrEmpty(value))
        {
            reason = "it is empty";
            return false;
        }

        if (value.Length > 64)
        {
            reason = "it is longer than 64 characters";
            return false;
        }

        foreach (var c in value)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('-' or '_' or '.'))
            {
                reason = $"character '{c}' is not allowed (use letters, digits, '-', '_' and '.')";
                return false;
            }
        }

        reason = null;
        return true;
    }

    /// <inheritdoc />
    public override string ToString() => Value ?? string.Empty;
}
