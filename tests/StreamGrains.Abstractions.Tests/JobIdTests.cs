namespace StreamGrains.Abstractions.Tests;

public sealed class JobIdTests
{
    [Theory]
    [InlineData("a")]
    [InlineData("job-1")]
    [InlineData("Job_2.v3")]
    [InlineData("0123456789012345678901234567890123456789012345678901234567890123")]
    public void Valid_ids_are_accepted(string value)
    {
        var id = new JobId(value);

        Assert.Equal(value, id.Value);
        Assert.Equal(value, id.ToString());
        Assert.True(JobId.IsValid(value, out var reason));
        Assert.Null(reason);
    }

    [Theory]
    [InlineData("")]
    [InlineData("01234567890123456789012345678901234567890123456789012345678901234")]
    [InlineData("has space")]
    [InlineData("slash/in/id")]
    [InlineData("colon:")]
    [InlineData("ümlaut")]
    [InlineData("tab\t")]
    public void Invalid_ids_are_refused_with_a_reason(string value)
    {
        Assert.False(JobId.IsValid(value, out var reason));
        Assert.False(string.IsNullOrEmpty(reason));

        var error = Assert.Throws<ArgumentException>(() => new JobId(value));
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Null_is_not_a_valid_id()
    {
        Assert.False(JobId.IsValid(null, out var reason));
        Assert.Equal("it is empty", reason);
        Assert.Throws<ArgumentException>(() => new JobId(null!));
    }

    [Fact]
    public void New_ids_are_valid_and_distinct()
    {
        var ids = Enumerable.Range(0, 100).Select(static _ => JobId.New()).ToList();

        Assert.All(ids, static id => Assert.True(JobId.IsValid(id.Value, out _)));
        Assert.Equal(100, ids.Distinct().Count());
    }

    [Fact]
    public void Ids_with_equal_text_are_equal()
    {
        Assert.Equal(new JobId("same"), new JobId("same"));
        Assert.NotEqual(new JobId("same"), new JobId("Same"));
    }
}
