using System.Runtime.CompilerServices;

namespace StreamGrains.State.Storage;

/// <summary>The rules for paths in checkpoint storage, the same for every implementation.</summary>
internal static class StoragePaths
{
    /// <summary>Throws <see cref="ArgumentException"/> naming <paramref name="path"/> unless it is relative, '/'-separated, without empty, "." or ".." segments.</summary>
    public static void Validate(string path, [CallerArgumentExpression(nameof(path))] string? parameterName = null)
    {
        ArgumentNullException.ThrowIfNull(path, parameterName);
        if (!IsValid(path))
        {
            throw new ArgumentException($"'{path}' is not a valid checkpoint storage path: it must be relative and '/'-separated, without a leading '/', '\\', or empty, '.' or '..' segments.", parameterName);
        }
    }

    /// <summary>Whether <paramref name="path"/> follows the rules.</summary>
    public static bool IsValid(string path)
    {
        if (path.Length == 0 || path.Contains('\\', StringComparison.Ordinal) || path.Contains('\0', StringComparison.Ordinal))
        {
            return false;
        }

        foreach (var segment in path.Split('/'))
        {
            if (segment is "" or "." or "..")
            {
                return false;
            }
        }

        return true;
    }
}
