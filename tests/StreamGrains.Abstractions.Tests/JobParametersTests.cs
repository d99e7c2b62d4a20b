namespace StreamGrains.Abstractions.Tests;

public sealed class JobParametersTests
{
    private static readonly JobParameters Parameters = new(new Dictionary<string, string>
    {
        ["name"] = "clicks",
        ["events"] = "9000000000",
        ["splits"] = "16",
        ["negative"] = "-3",
        ["ratio"] = "0.25",
        ["exp"] = "1e3",
        ["enabled"] = "true",
        ["disabled"] = "False",
        ["text"] = "abc",
        ["huge"] = "99999999999999999999",
        ["blank"] = "",
    });

    [Fact]
    public void Typed_getters_parse_set_values()
    {
        Assert.Equal("clicks", Parameters.GetString("name", "x"));
        Assert.Equal(9_000_000_000L, Parameters.GetInt64("events", 0));
        Assert.Equal(16, Parameters.GetInt32("splits", 0));
        Assert.Equal(-3, Parameters.GetInt32("negative", 0));
        Assert.Equal(0.25, Parameters.GetDouble("ratio", 0));
        Assert.Equal(1000.0, Parameters.GetDouble("exp", 0));
        Assert.True(Parameters.GetBoolean("enabled", false));
        Assert.False(Parameters.GetBoolean("disabled", true));
    }

    [Fact]
    public void Typed_getters_return_the_default_when_the_parameter_is_not_set()
    {
        Assert.Equal("fallback", Parameters.GetString("missing", "fallback"));
        Assert.Equal(17L, Parameters.GetInt64("missing", 17));
        Assert.Equal(-4, Parameters.GetInt32("missing", -4));
        Assert.Equal(2.5, Parameters.GetDouble("missing", 2.5));
        Assert.True(Parameters.GetBoolean("missing", true));
    }

    [Fact]
    public void Names_are_case_sensitive()
    {
        Assert.Equal("default", Parameters.GetString("NAME", "default"));
        Assert.Equal(1, Parameters.GetInt32("Splits", 1));
    }

    [Theory]
    [InlineData("text")]
    [InlineData("ratio")]
    [InlineData("blank")]
    [InlineData("huge")]
    public void Int64_getter_throws_FormatException_naming_the_parameter(string name)
    {
        var error = Assert.Throws<FormatException>(() => Parameters.GetInt64(name, 0));

        Assert.Contains($"'{name}'", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("events")]
    [InlineData("text")]
    [InlineData("ratio")]
    public void Int32_getter_throws_FormatException_for_non_integers_and_overflow(string name)
    {
        var error = Assert.Throws<FormatException>(() => Parameters.GetInt32(name, 0));

        Assert.Contains($"'{name}'", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("text")]
    [InlineData("blank")]
    public void Double_getter_throws_FormatException(string name) =>
        Assert.Throws<FormatException>(() => Parameters.GetDouble(name, 0));

    [Theory]
    [InlineData("text")]
    [InlineData("splits")]
    [InlineData("blank")]
    public void Boolean_getter_throws_FormatException(string name) =>
        Assert.Throws<FormatException>(() => Parameters.GetBoolean(name, false));

    [Fact]
    public void With_returns_a_copy_and_leaves_the_original_unchanged()
    {
        var original = JobParameters.Empty.With("a", "1");

        var changed = original.With("a", 2).With("b", "x");

        Assert.Equal(1, original.GetInt32("a", 0));
        Assert.Equal("none", original.GetString("b", "none"));
        Assert.Equal(2, changed.GetInt32("a", 0));
        Assert.Equal("x", changed.GetString("b", "none"));
        Assert.Empty(JobParameters.Empty.Values);
    }

    [Fact]
    public void ToString_lists_parameters_sorted_by_name()
    {
        var parameters = JobParameters.Empty.With("b", "2").With("a", "1").With("C", "3");

        Assert.Equal("C=3, a=1, b=2", parameters.ToString());
    }
}
