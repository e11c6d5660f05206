"""One folder per carrier: connector (mapping + transport use) and its code tables as data."""
